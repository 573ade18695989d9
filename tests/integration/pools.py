"""Removing a test's storage pool with everything in it (the cleanup every real-libvirt test needs)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt

from vmforge.storage import lookup_pool


def remove_pool(conn: Any, name: str) -> None:
    """Delete every volume of pool ``name``, stop it and undefine it; nothing when it is absent."""
    pool = lookup_pool(conn, name)
    if pool is None:
        return
    if pool.isActive():
        pool.refresh(0)  # volumes another connection made since the pool was last read
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()
    pool.undefine()


@contextlib.contextmanager
def qemu_reachable_folder(label: str, pool: str, uri: str = "qemu:///system") -> Iterator[Path]:
    """``/var/tmp/<label>-<pid>``, mode 0755 (QEMU runs as libvirt-qemu and cannot enter pytest's
    0700 tmp folders), for a test's pool and files; afterwards libvirt pool ``pool`` goes with
    all its volumes, and the folder with everything in it."""
    base = Path(f"/var/tmp/{label}-{os.getpid()}")
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    try:
        yield base
    finally:
        conn = libvirt.open(uri)
        try:
            remove_pool(conn, pool)
        finally:
            conn.close()
        shutil.rmtree(base, ignore_errors=True)
