"""Removing a test's storage pool with everything in it (the cleanup every real-libvirt test needs)."""

from __future__ import annotations

from typing import Any

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
