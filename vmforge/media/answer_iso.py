"""The answer media: a small ISO (ISO9660 level 4 + Joliet + UDF 2.60, no Rock Ridge).

Layout::

    /autounattend.xml             Setup finds it at the root of any media
    /$WinPEDriver$/<driver>/...   virtio drivers Setup loads in WinPE (no paths needed)
    /vmforge/bootstrap.ps1        started by the first-logon command
    /vmforge/packages/...         the spec's packages (see vmforge.media.package_media)

Windows reads UDF or Joliet; Linux mounts the UDF tree (the probe guest) and xorriso, isoinfo -J
and pycdlib read Joliet or UDF, so a Rock Ridge tree would be a third copy of every name that no
reader uses (it cost ~15% of the build).

The image is byte-for-byte reproducible: pycdlib's clock and UDF random ids are pinned to
``epoch`` and a seed derived from the inputs while it writes.  The image's name on disk carries
the inputs' hash, so an unchanged VM never rebuilds its media.

A file's contents are either bytes or a :class:`FileOnDisk` (a local file with the sha256 its
caller already computed): large files are never read into memory, their hash is not taken
twice, and their bytes are copied into the image by the kernel (``copy_file_range``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import random
import threading
import time
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.udf
import pycdlib.utils

from vmforge.errors import VmforgeError

VOLUME_LABEL = "VMFORGE_ANSWER"
DEFAULT_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
_PINNED_MODULES = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.udf, pycdlib.dates, pycdlib.utils)
_pin_lock = threading.Lock()
_ORIGINAL_COPY = pycdlib.utils.copy_data_yield
_ORIGINAL_NORMPATH = pycdlib.utils.normpath
WRITE_BLOCKSIZE = 1 << 20  # pycdlib's default 32 KiB costs a Python round trip per block


@dataclass(frozen=True)
class FileOnDisk:
    """A local file for the image; ``sha256`` and ``size`` are what the caller checked."""

    path: Path
    sha256: str
    size: int


MediaContent = bytes | FileOnDisk


@dataclass(frozen=True)
class AnswerMedia:
    path: Path
    inputs_sha256: str
    files: tuple[str, ...]
    reused: bool


def _size(content: MediaContent) -> int:
    return content.size if isinstance(content, FileOnDisk) else len(content)


def _sha256(content: MediaContent) -> bytes:
    return bytes.fromhex(content.sha256) if isinstance(content, FileOnDisk) else hashlib.sha256(content).digest()


def inputs_digest(files: Mapping[str, MediaContent], epoch: int) -> str:
    """Identity of the image: every name, size and content sha256 (bytes and files alike)."""
    digest = hashlib.sha256(f"vmforge-answer-media-v1 {VOLUME_LABEL} {epoch}\n".encode())
    for name in sorted(files):
        digest.update(f"{name}\0{_size(files[name])}\0".encode())
        digest.update(_sha256(files[name]))
    return digest.hexdigest()


def _copy_data_yield(data_length: int, blocksize: int, infp: BinaryIO, outfp: BinaryIO) -> Iterator[int]:
    """pycdlib's data copy, done by the kernel when both sides are files (same bytes, no
    round trip through Python); anything else goes through pycdlib's own loop."""
    try:
        in_fd, out_fd = infp.fileno(), outfp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield from _ORIGINAL_COPY(data_length, blocksize, infp, outfp)
        return
    outfp.flush()
    src, dst, left = infp.tell(), outfp.tell(), data_length
    try:
        while left > 0:
            copied = os.copy_file_range(in_fd, out_fd, min(left, 1 << 30), src, dst)
            if copied == 0:  # the file is shorter than stated: pycdlib's loop stops the same way
                yield left
                left = 0
                break
            src, dst, left = src + copied, dst + copied, left - copied
            yield copied
    except OSError:  # no in-kernel copy between these files: the rest the ordinary way
        pass
    infp.seek(src)
    outfp.seek(dst)
    if left > 0:
        yield from _ORIGINAL_COPY(left, blocksize, infp, outfp)


def _normpath(path: str) -> bytes:
    """pycdlib's path normalisation (~3 calls per added file), skipped for paths that are already
    normal: absolute, no empty, '.' or '..' component (every component is non-empty and none
    starts with a dot), no trailing slash.  Anything else goes to pycdlib's own."""
    if path.startswith("/") and not path.endswith("/") and "//" not in path and "/." not in path:
        return path.encode("utf-8")
    result: bytes = _ORIGINAL_NORMPATH(path)
    return result


@contextlib.contextmanager
def _pinned_clock(epoch: int, seed: int) -> Iterator[None]:
    """pycdlib stamps wall-clock times and random UDF ids; pin both while one image is written
    (and meanwhile copy file data in the kernel and skip normalising paths that are normal)."""
    fake_time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    fake_time.time = lambda: float(epoch)
    # No dependence on the host's time zone; one conversion serves the ~5 stamps of every record.
    cached_gmtime = functools.lru_cache(maxsize=8)(time.gmtime)
    fake_time.gmtime = fake_time.localtime = lambda secs=None: cached_gmtime(float(epoch) if secs is None else secs)
    fake_random = random.Random(seed)  # noqa: S311 - identifiers, not secrets
    with _pin_lock:
        saved = [(m, getattr(m, "time")) for m in _PINNED_MODULES]  # noqa: B009 - untyped module attributes
        saved_random = getattr(pycdlib.udf, "random")  # noqa: B009
        try:
            for module, _ in saved:
                setattr(module, "time", fake_time)  # noqa: B010
            setattr(pycdlib.udf, "random", fake_random)  # noqa: B010
            setattr(pycdlib.utils, "copy_data_yield", _copy_data_yield)  # noqa: B010
            setattr(pycdlib.utils, "normpath", _normpath)  # noqa: B010
            yield
        finally:
            for module, original in saved:
                setattr(module, "time", original)  # noqa: B010
            setattr(pycdlib.udf, "random", saved_random)  # noqa: B010
            setattr(pycdlib.utils, "copy_data_yield", _ORIGINAL_COPY)  # noqa: B010
            setattr(pycdlib.utils, "normpath", _ORIGINAL_NORMPATH)  # noqa: B010


def _iso9660_name(name: str, is_dir: bool) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._" else "_" for c in name.upper())
    if is_dir:
        return cleaned.replace(".", "_")[:31]
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    return f"{stem.replace('.', '_')[:26]}.{ext[:4]};1"


def _layout_seed(files: Mapping[str, MediaContent], epoch: int) -> int:
    """Seed for pycdlib's UDF ids: a function of names, sizes and epoch (cheap; contents need not count)."""
    text = "\0".join(f"{name}:{_size(files[name])}" for name in sorted(files))
    return int(hashlib.sha256(f"{epoch}\0{text}".encode()).hexdigest()[:16], 16)


def _write_iso(files: Mapping[str, MediaContent], out: BinaryIO, epoch: int) -> None:
    with _pinned_clock(epoch, _layout_seed(files, epoch)):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=4, joliet=3, udf="2.60", vol_ident=VOLUME_LABEL)
        iso_dirs: dict[str, str] = {"": ""}
        for name in sorted(files):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                rel = "/".join(parts[:depth])
                if rel in iso_dirs:
                    continue
                parent = iso_dirs["/".join(parts[: depth - 1])]
                iso_dirs[rel] = f"{parent}/{_iso9660_name(parts[depth - 1], True)}"
                iso.add_directory(iso_dirs[rel], joliet_path=f"/{rel}", udf_path=f"/{rel}")
            content = files[name]
            iso_path = f"{iso_dirs['/'.join(parts[:-1])]}/{_iso9660_name(parts[-1], False)}"
            joliet, udf = f"/{name}", f"/{name}"
            if isinstance(content, FileOnDisk):
                _check_unchanged(name, content)  # opened only while its data is written
                iso.add_file(str(content.path), iso_path, joliet_path=joliet, udf_path=udf)
            else:
                iso.add_fp(io.BytesIO(content), len(content), iso_path, joliet_path=joliet, udf_path=udf)  # fmt: skip
        iso.write_fp(out, blocksize=WRITE_BLOCKSIZE)
        iso.close()


def _check_unchanged(name: str, content: FileOnDisk) -> None:
    try:
        size = content.path.stat().st_size
    except OSError as exc:
        raise VmforgeError(
            f"{content.path} (for {name} on the answer media) cannot be read: {exc.strerror}",
            hint="put the file back and build the media again",
        ) from None
    if size != content.size:
        raise VmforgeError(
            f"{content.path} (for {name} on the answer media) changed size since it was checked",
            hint="do not modify package files while media are built; run the command again",
        )


def build_answer_iso(files: Mapping[str, MediaContent], epoch: int = DEFAULT_EPOCH) -> bytes:
    """The ISO image holding ``files`` (relative POSIX paths -> contents), in memory."""
    out = io.BytesIO()
    _write_iso(files, out, epoch)
    return out.getvalue()


def write_answer_iso(
    path: Path, files: Mapping[str, MediaContent], epoch: int = DEFAULT_EPOCH, *, durable: bool = True
) -> None:
    """Write the image straight to ``path`` (temporary file, fsync, rename: never half-written).

    ``durable=False`` skips the fsync: only for scratch images (the benchmark measures the
    writing itself that way, as genisoimage, which never syncs, does it)."""
    _check_names(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            _write_iso(files, handle, epoch)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # it holds the VM's secrets: obfuscated password, WinRM key
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_answer_media(
    media_dir: Path, files: Mapping[str, MediaContent], *, epoch: int = DEFAULT_EPOCH, name: str = "answer"
) -> AnswerMedia:
    """Write ``<media_dir>/<name>-<hash>.iso`` atomically unless it already exists for these inputs."""
    _check_names(files)
    digest = inputs_digest(files, epoch)
    path = media_dir / f"{name}-{digest[:16]}.iso"
    if path.is_file():
        return AnswerMedia(path, digest, tuple(sorted(files)), reused=True)
    write_answer_iso(path, files, epoch)
    for stale in media_dir.glob(f"{name}-*.iso"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return AnswerMedia(path, digest, tuple(sorted(files)), reused=False)


def _check_names(files: Mapping[str, MediaContent]) -> None:
    for name in files:
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or not name.isascii():
            raise VmforgeError(
                f"answer media file name {name!r} is not a plain relative ASCII path", hint="vmforge bug"
            )
        if any(len(p) > 64 for p in parts):
            raise VmforgeError(f"answer media file name {name!r} has a part over 64 characters", hint="shorten it")
