"""ivshmem: size, /dev/shm room and the backing file's mode, the kvmfr device and its ACLs."""

from __future__ import annotations

import os
import re
import stat

from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.plan import ivshmem_auto_size
from vmforge.units import format_size

NO_IVSHMEM = "the spec has no ivshmem device (ivshmem.enabled = false)"
KVMFR_DEVICE = "/dev/kvmfr0"
NO_KVMFR = "the spec shares memory through /dev/shm, not the kvmfr module"
SHM = "/dev/shm"  # noqa: S108 - where QEMU creates ivshmem backing files
APPARMOR_LOCAL = "/etc/apparmor.d/local/abstractions/libvirt-qemu"


def check_ivshmem_size(size: int | None, width: int, height: int) -> CheckResult:
    if size is None:
        return skipped("ivshmem.size", NO_IVSHMEM)
    need = ivshmem_auto_size(width, height)
    evidence = f"three {width}x{height} BGRA frames plus 4 MiB, rounded to a power of two: {format_size(need)}"
    if size & (size - 1):
        return failed(
            "ivshmem.size",
            f"{format_size(size)} is not a power of two (QEMU refuses it)",
            f"set ivshmem.size = \"{format_size(need)}\" (or 'auto')",
            evidence,
        )
    if size < need:
        return failed(
            "ivshmem.size",
            f"{format_size(size)} is too small for {width}x{height}",
            f"set ivshmem.size = \"{format_size(need)}\" (or 'auto')",
            evidence,
        )
    return passed("ivshmem.size", f"{format_size(size)}: a power of two, enough for {width}x{height}", evidence)


def check_shm_space(fs: HostFs, size: int | None, name: str | None) -> CheckResult:
    if size is None or name is None:
        return skipped("ivshmem.shm-space", NO_IVSHMEM)
    shm = fs.path(SHM)
    if not shm.is_dir():
        return failed("ivshmem.shm-space", f"{SHM} does not exist", f"mount -t tmpfs -o mode=1777 tmpfs {SHM}")
    vfs = os.statvfs(shm)
    free = vfs.f_bavail * vfs.f_frsize
    backing = shm / name
    if backing.exists():
        free += backing.stat().st_size  # an existing backing file is reused, not added
    evidence = (f"{SHM}: {format_size(vfs.f_blocks * vfs.f_frsize)} total, {format_size(free)} available",)
    if free < size:
        return failed(
            "ivshmem.shm-space",
            f"{SHM} has {format_size(free)} free; the shared memory needs {format_size(size)}",
            f"mount -o remount,size={max(size * 2, vfs.f_blocks * vfs.f_frsize + size) // 1024**2}m {SHM} "
            "(or the tmpfs size in /etc/fstab)",
            *evidence,
        )
    return passed("ivshmem.shm-space", f"{SHM} has room for {format_size(size)}", *evidence)


def check_shm_file(fs: HostFs, name: str | None) -> CheckResult:
    if name is None:
        return skipped("ivshmem.shm-file", NO_IVSHMEM)
    path = fs.path(f"{SHM}/{name}")
    fix = (
        f"create it before the VM starts with the host program's group: a tmpfiles rule "
        f"'f {SHM}/{name} 0660 libvirt-qemu kvm -' in /etc/tmpfiles.d/vmforge.conf "
        "(systemd-tmpfiles --create), or touch + chgrp + chmod 0660 it; and add the host program's user to that group"
    )
    if not path.exists():
        return warned(
            "ivshmem.shm-file",
            f"{SHM}/{name} does not exist: QEMU will create it owned by its own user, mode 0600, "
            "which a host program (the viewer) cannot open",
            fix,
        )
    info = path.stat()
    evidence = (f"{SHM}/{name}: {fs.owner(path)}",)
    if not stat.S_ISREG(info.st_mode):
        return failed("ivshmem.shm-file", f"{SHM}/{name} is not a regular file", f"rm it; then {fix}", *evidence)
    if info.st_mode & 0o060 != 0o060:
        return warned(
            "ivshmem.shm-file",
            f"{SHM}/{name} is not group read-write, so only its owner can map it",
            f"chmod 0660 {SHM}/{name}; {fix}",
            *evidence,
        )
    return passed("ivshmem.shm-file", f"{SHM}/{name} is group read-write for the host program", *evidence)


def check_kvmfr(fs: HostFs, used: bool) -> CheckResult:
    path = fs.path(KVMFR_DEVICE)
    present = path.exists() or path.is_symlink()
    if present and not stat.S_ISCHR(path.stat().st_mode):
        # A VM started before the module loaded made QEMU create a plain file there.
        status = failed if used else warned
        return status(
            "ivshmem.kvmfr",
            f"{KVMFR_DEVICE} is a regular file, not the kvmfr character device (a VM started before the module loaded)",
            f"stop the VM, rm {KVMFR_DEVICE}, modprobe kvmfr static_size_mb=SIZE",
            f"{KVMFR_DEVICE}: {fs.owner(path)}",
        )
    if not used:
        return skipped("ivshmem.kvmfr", NO_KVMFR)
    if not present:
        return failed(
            "ivshmem.kvmfr",
            f"{KVMFR_DEVICE} does not exist: the kvmfr module is not loaded",
            "build and load Looking Glass's kvmfr module: modprobe kvmfr static_size_mb=SIZE "
            "(and load it at boot via /etc/modules-load.d/kvmfr.conf)",
        )
    return passed("ivshmem.kvmfr", f"{KVMFR_DEVICE} is a character device", f"{KVMFR_DEVICE}: {fs.owner(path)}")


def apparmor_enabled(fs: HostFs) -> bool:
    return (fs.read("/sys/module/apparmor/parameters/enabled") or "").strip() == "Y"


def check_device_acl(fs: HostFs, device: str, used: bool) -> CheckResult:
    """A host device QEMU opens itself needs libvirt's cgroup_device_acl and AppArmor rules."""
    check_id = "ivshmem.kvmfr-acl"
    if not used:
        return skipped(check_id, NO_KVMFR)
    problems: list[str] = []
    fixes: list[str] = []
    acl = fs.qemu_conf_value("cgroup_device_acl")
    evidence = [f"qemu.conf cgroup_device_acl: {acl or 'not set (libvirt default list)'}"]
    if acl is None or not re.search(rf"[\"']{re.escape(device)}[\"']", acl):
        problems.append(f"{device} is not in cgroup_device_acl")
        fixes.append(
            f'in /etc/libvirt/qemu.conf set cgroup_device_acl = [ "/dev/null", "/dev/full", "/dev/zero", '
            f'"/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "{device}" ] and restart libvirtd'
        )
    if apparmor_enabled(fs):
        local = fs.read(APPARMOR_LOCAL) or ""
        evidence.append(f"AppArmor enabled; {APPARMOR_LOCAL}: {'mentions' if device in local else 'lacks'} {device}")
        if device not in local:
            problems.append(f"AppArmor does not let QEMU open {device}")
            fixes.append(f"echo '{device} rw,' >> {APPARMOR_LOCAL} and restart libvirtd")
    else:
        evidence.append("AppArmor not enabled")
    if problems:
        return failed(check_id, "; ".join(problems), "; ".join(fixes), *evidence)
    return passed(check_id, f"libvirt's device ACL and AppArmor let QEMU open {device}", *evidence)
