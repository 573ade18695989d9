"""Build the C guest peer (guest/vmforge-ivshmem-peer.c) as a static binary.

The probe guest's initramfs carries this binary; on the host the same binary maps a /dev/shm
file, which is how the test suite checks its protocol logic against the Python host side.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from vmforge.errors import CommandFailed
from vmforge.paths import cache_home

SOURCE = Path(__file__).resolve().parent / "guest" / "vmforge-ivshmem-peer.c"
INCLUDED = (SOURCE.with_name("vfio-doorbell.c"),)  # #included by SOURCE: part of the build hash
BINARY_NAME = "vmforge-ivshmem-peer"
BUILD_TIMEOUT = 120.0


def build_guest_peer(out_dir: Path | None = None, *, cc: str = "gcc") -> Path:
    """Compile (once per source hash) and return the static binary's path."""
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in (SOURCE, *INCLUDED))).hexdigest()[:16]
    out_dir = out_dir or cache_home() / "ivshmem-peer" / digest
    binary = out_dir / BINARY_NAME
    if binary.is_file():
        return binary
    if shutil.which(cc) is None:
        raise CommandFailed(f"{cc} is not installed; it builds the ivshmem guest peer", hint="apt-get install gcc")
    out_dir.mkdir(parents=True, exist_ok=True)
    # A name of its own per build: concurrent builders (the probe image is built by several
    # processes at once) never write the same file; the rename is atomic.
    partial = out_dir / f".{BINARY_NAME}.{os.getpid()}.{threading.get_ident()}.partial"
    cmd = [cc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(partial), str(SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise CommandFailed(
            f"building the ivshmem guest peer failed ({cc} exited {proc.returncode})",
            hint="static linking needs libc6-dev (libc.a)",
            returncode=proc.returncode,
            output=proc.stderr,
        )
    partial.replace(binary)
    return binary
