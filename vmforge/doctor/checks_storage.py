"""The storage pool's folder: reachable by QEMU's user, with room for the disk."""

from __future__ import annotations

import os
from pathlib import Path

from vmforge.doctor.hostfs import HostFs, Identity
from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.units import format_size


def nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_storage(
    fs: HostFs,
    target: Path | None,
    disk_size: int,
    qemu: Identity | None,
    *,
    available: int | None = None,
    creator_is_qemu: bool = False,
    dynamic_ownership: bool = True,
) -> CheckResult:
    """``target`` is the pool folder on the host (None: remote host, pool not found);
    ``available`` libvirt's figure for an existing pool (else statvfs of the folder);
    ``creator_is_qemu``: qemu:///session, where QEMU's user also creates the images;
    ``dynamic_ownership``: qemu.conf lets libvirt hand images to QEMU's user (the default)."""
    if target is None:
        return skipped("storage.pool", "remote host without the pool: vmforge cannot look at its folder")
    path = fs.path(target)
    existing = nearest_existing(path)
    evidence = [f"{target}: " + ("exists" if existing == path else f"missing; nearest folder {existing}")]
    evidence.append(f"{existing}: {fs.owner(existing)}")
    if qemu is not None:
        blocker = qemu.can_reach(path / "disk.qcow2", fs.root)
        if blocker is not None:
            shown = "/" + str(blocker.relative_to(fs.root))
            return failed(
                "storage.pool",
                f"QEMU's user {qemu.name} cannot enter {shown} ({fs.owner(blocker)}), so it cannot open the disk",
                f"chmod o+x {shown}, or point disk.pool at a pool whose folder QEMU can reach",
                *evidence,
            )
        if creator_is_qemu and not qemu.can(existing, os.W_OK | os.X_OK):
            shown = "/" + str(existing.relative_to(fs.root))
            return failed(
                "storage.pool",
                f"{qemu.name} cannot write to {shown}",
                f"chown {qemu.name} {shown}, or use another disk.pool",
                *evidence,
            )
    if not creator_is_qemu and not dynamic_ownership:
        return failed(
            "storage.pool",
            "qemu.conf sets dynamic_ownership = 0: libvirt will not hand the disk image (created as root, 0600) "
            "to QEMU's user, so QEMU cannot open it",
            "remove 'dynamic_ownership = 0' from /etc/libvirt/qemu.conf (the default is 1) and restart libvirtd",
            *evidence,
        )
    if available is None:
        vfs = os.statvfs(existing)
        available = vfs.f_bavail * vfs.f_frsize
    evidence.append(f"free: {format_size(available)}; disk.size: {format_size(disk_size)}")
    if available < disk_size:
        return warned(
            "storage.pool",
            f"the qcow2 disk can grow to {format_size(disk_size)} but only {format_size(available)} is free",
            "free space on that filesystem, lower disk.size, or use a disk.pool on a larger filesystem",
            *evidence,
        )
    return passed("storage.pool", f"room for {format_size(disk_size)} and reachable by QEMU", *evidence)
