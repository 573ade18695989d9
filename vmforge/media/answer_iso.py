"""The answer media: a small ISO (ISO9660 level 4 + Rock Ridge + Joliet + UDF 2.60).

Layout::

    /autounattend.xml             Setup finds it at the root of any media
    /$WinPEDriver$/<driver>/...   virtio drivers Setup loads in WinPE (no paths needed)
    /vmforge/bootstrap.ps1        started by the first-logon command

Windows reads UDF or Joliet; Rock Ridge gives Linux readers the same names.  The image is
byte-for-byte reproducible: pycdlib's clock and UDF random ids are pinned to ``epoch`` and a
seed derived from the inputs while it writes.  The image's name on disk carries the inputs'
hash, so an unchanged VM never rebuilds its media.
"""

from __future__ import annotations

import contextlib
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

from vmforge.errors import VmforgeError

VOLUME_LABEL = "VMFORGE_ANSWER"
DEFAULT_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
_PINNED_MODULES = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.udf, pycdlib.dates)
_pin_lock = threading.Lock()


@dataclass(frozen=True)
class AnswerMedia:
    path: Path
    inputs_sha256: str
    files: tuple[str, ...]
    reused: bool


def inputs_digest(files: Mapping[str, bytes], epoch: int) -> str:
    digest = hashlib.sha256(f"vmforge-answer-media-v1 {VOLUME_LABEL} {epoch}\n".encode())
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode())
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


@contextlib.contextmanager
def _pinned_clock(epoch: int, seed: int) -> Iterator[None]:
    """pycdlib stamps wall-clock times and random UDF ids; pin both while one image is written."""
    fake_time = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    fake_time.time = lambda: float(epoch)
    fake_time.localtime = time.gmtime  # no dependence on the host's time zone
    fake_random = random.Random(seed)  # noqa: S311 - identifiers, not secrets
    with _pin_lock:
        saved = [(m, getattr(m, "time")) for m in _PINNED_MODULES]  # noqa: B009 - untyped module attributes
        saved_random = getattr(pycdlib.udf, "random")  # noqa: B009
        try:
            for module, _ in saved:
                setattr(module, "time", fake_time)  # noqa: B010
            setattr(pycdlib.udf, "random", fake_random)  # noqa: B010
            yield
        finally:
            for module, original in saved:
                setattr(module, "time", original)  # noqa: B010
            setattr(pycdlib.udf, "random", saved_random)  # noqa: B010


def _iso9660_name(name: str, is_dir: bool) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._" else "_" for c in name.upper())
    if is_dir:
        return cleaned.replace(".", "_")[:31]
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    return f"{stem.replace('.', '_')[:26]}.{ext[:4]};1"


def _layout_seed(files: Mapping[str, bytes], epoch: int) -> int:
    """Seed for pycdlib's UDF ids: a function of names, sizes and epoch (cheap; contents need not count)."""
    text = "\0".join(f"{name}:{len(files[name])}" for name in sorted(files))
    return int(hashlib.sha256(f"{epoch}\0{text}".encode()).hexdigest()[:16], 16)


def _write_iso(files: Mapping[str, bytes], out: BinaryIO, epoch: int) -> None:
    with _pinned_clock(epoch, _layout_seed(files, epoch)):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", udf="2.60", vol_ident=VOLUME_LABEL)
        iso_dirs: dict[str, str] = {"": ""}
        for name in sorted(files):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                rel = "/".join(parts[:depth])
                if rel in iso_dirs:
                    continue
                parent = iso_dirs["/".join(parts[: depth - 1])]
                iso_dirs[rel] = f"{parent}/{_iso9660_name(parts[depth - 1], True)}"
                iso.add_directory(iso_dirs[rel], rr_name=parts[depth - 1], joliet_path=f"/{rel}", udf_path=f"/{rel}")
            data = files[name]
            iso_path = f"{iso_dirs['/'.join(parts[:-1])]}/{_iso9660_name(parts[-1], False)}"
            iso.add_fp(
                io.BytesIO(data), len(data), iso_path, rr_name=parts[-1], joliet_path=f"/{name}", udf_path=f"/{name}"
            )
        iso.write_fp(out)
        iso.close()


def build_answer_iso(files: Mapping[str, bytes], epoch: int = DEFAULT_EPOCH) -> bytes:
    """The ISO image holding ``files`` (relative POSIX paths -> contents), in memory."""
    out = io.BytesIO()
    _write_iso(files, out, epoch)
    return out.getvalue()


def write_answer_iso(path: Path, files: Mapping[str, bytes], epoch: int = DEFAULT_EPOCH) -> None:
    """Write the image straight to ``path`` (temporary file, fsync, rename: never half-written)."""
    _check_names(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            _write_iso(files, handle, epoch)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_answer_media(
    media_dir: Path, files: Mapping[str, bytes], *, epoch: int = DEFAULT_EPOCH, name: str = "answer"
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


def _check_names(files: Mapping[str, bytes]) -> None:
    for name in files:
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or not name.isascii():
            raise VmforgeError(
                f"answer media file name {name!r} is not a plain relative ASCII path", hint="vmforge bug"
            )
        if any(len(p) > 64 for p in parts):
            raise VmforgeError(f"answer media file name {name!r} has a part over 64 characters", hint="shorten it")
