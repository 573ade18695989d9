"""Host-side copies of the per-VM firmware state (NVRAM file, swtpm state folder).

libvirt 9.0 snapshots neither (see docs/images.md), so vmforge copies them itself: with the
source's mode *and* owner kept (swtpm runs as ``tss``, the NVRAM belongs to QEMU's user), and
with a content digest so a restore can prove it put back exactly what was saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from vmforge.errors import VmforgeError

SWTPM_STATE_ROOT = Path("/var/lib/libvirt/swtpm")
CHUNK = 1024**2


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(root: Path) -> str:
    """SHA-256 over every regular file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(file_digest(path).encode() + b"\n")
    return digest.hexdigest()


def state_digest(path: Path | None) -> str | None:
    """The digest of a file or folder; None when there is nothing there."""
    if path is None or not path.exists():
        return None
    return tree_digest(path) if path.is_dir() else file_digest(path)


def _keep_owner(source: Path, target: Path) -> None:
    info = source.stat()
    with contextlib.suppress(PermissionError):  # not root: the copy stays ours, as the source was
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)


def copy_state(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` (which must not exist), keeping modes and owners."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
            for path in [target, *target.rglob("*")]:
                _keep_owner(source / path.relative_to(target), path)
        else:
            shutil.copy2(source, target)
            _keep_owner(source, target)
    except OSError as exc:
        raise VmforgeError(
            f"copying {source} to {target} failed ({exc.strerror or exc})",
            hint="vmforge copies NVRAM and TPM state on the libvirt host itself: run it there, as root for qemu:///system",
        ) from None


def replace_state(saved: Path | None, live: Path) -> None:
    """Make ``live`` hold exactly ``saved`` (None: make it absent), via a sibling then a rename."""
    staging = live.with_name(f".{live.name}.vmforge-restore")
    remove_state(staging)
    if saved is not None:
        copy_state(saved, staging)
    old = live.with_name(f".{live.name}.vmforge-old")
    remove_state(old)
    if live.exists():
        live.rename(old)
    if saved is not None:
        staging.rename(live)
    remove_state(old)


def remove_state(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
