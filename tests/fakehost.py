"""Fake host trees for ``vmforge doctor``: /proc, /dev, /etc (and /sys via :mod:`tests.fakesysfs`).

Laid out like a Debian 12 host: libvirt-qemu (uid 64055) in group kvm (gid 108), /proc files
in the kernel's formats, /dev/kvm a real character device node (mknod; tests run as root).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests import fakesysfs
from tests.fakesysfs import HDA, ROOT_PORT, VGA, FakeDevice

KVM_GID = 108
QEMU_UID = 64055

PASSWD = """root:x:0:0:root:/root:/bin/bash
libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
"""
GROUP = """root:x:0:
kvm:x:108:alice,libvirt-qemu
libvirt-qemu:x:64055:libvirt-qemu
alice:x:1000:
"""
MEMINFO = """MemTotal:       32823044 kB
MemFree:        20123456 kB
HugePages_Total:    {total}
HugePages_Free:     {free}
HugePages_Rsvd:        0
Hugepagesize:       2048 kB
"""
LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max open files            1024                 1048576              files
Max locked memory         {memlock}              {memlock}              bytes
"""
NIC = 0x020000


def write(root: Path, absolute: str, text: str) -> Path:
    path = root / absolute.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def base(
    root: Path,
    *,
    cmdline: str = "BOOT_IMAGE=/vmlinuz-6.1.0-13-amd64 root=UUID=1 ro quiet",
    cpu_vendor: str = "GenuineIntel",
    hugepages: tuple[int, int] = (0, 0),
    memlock: str = "8388608",
    processes: tuple[str, ...] = ("systemd", "sshd", "libvirtd"),
    framebuffers: tuple[str, ...] = (),
    modules: tuple[str, ...] = ("kvm", "kvm_intel"),
) -> Path:
    """/etc, /proc and /sys/module of a host; PCI devices come from fakesysfs."""
    write(root, "/etc/passwd", PASSWD)
    write(root, "/etc/group", GROUP)
    write(root, "/etc/libvirt/qemu.conf", '#user = "root"\n#cgroup_device_acl = [ "/dev/null" ]\n')
    write(root, "/proc/cmdline", cmdline + "\n")
    write(root, "/proc/cpuinfo", f"processor\t: 0\nvendor_id\t: {cpu_vendor}\nflags\t\t: fpu vme vmx\n")
    write(root, "/proc/meminfo", MEMINFO.format(total=hugepages[0], free=hugepages[1]))
    write(root, "/proc/self/limits", LIMITS.format(memlock=memlock))
    write(root, "/proc/fb", "".join(f"{i} {name}\n" for i, name in enumerate(framebuffers)))
    for pid, name in enumerate(processes, start=1):
        write(root, f"/proc/{pid}/comm", name + "\n")
    for module in modules:
        (root / "sys" / "module" / module).mkdir(parents=True, exist_ok=True)
    (root / "dev" / "shm").mkdir(parents=True, exist_ok=True)
    return root


def dev_kvm(root: Path, mode: int = 0o660, gid: int = KVM_GID) -> Path:
    path = root / "dev" / "kvm"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mknod(path, stat.S_IFCHR | mode, os.makedev(10, 232))
    except PermissionError:
        pytest.skip("a fake /dev/kvm node needs CAP_MKNOD (run the tests as root, as CI does)")
    os.chown(path, 0, gid)
    os.chmod(path, mode)
    return path


def navi10_without_vendor_reset(root: Path) -> Path:
    """An RX 5700 XT (Navi10, 1002:731f) with its audio function, second GPU of an Intel host."""
    return fakesysfs.build(
        root,
        [
            FakeDevice("0000:00:01.0", 0x8086, 0x1901, ROOT_PORT, "pcieport", 1),
            FakeDevice("0000:00:02.0", 0x8086, 0x3E92, VGA, "i915", 2, boot_vga=True, reset_method="flr"),
            FakeDevice(
                "0000:01:00.0", 0x1002, 0x731F, VGA, "vfio-pci", 1, boot_vga=False, reset_method="bus", rom=True
            ),
            FakeDevice("0000:01:00.1", 0x1002, 0xAB38, HDA, "vfio-pci", 1, reset_method="bus"),
        ],
    )


def gpu_shares_group_with_nic(root: Path) -> Path:
    """A GPU whose group (behind a chipset bridge without ACS) also holds the onboard NIC."""
    return fakesysfs.build(
        root,
        [
            FakeDevice("0000:00:1c.0", 0x8086, 0xA110, ROOT_PORT, "pcieport", 7),
            FakeDevice("0000:00:02.0", 0x8086, 0x3E92, VGA, "i915", 2, boot_vga=True),
            FakeDevice("0000:02:00.0", 0x10DE, 0x1C82, VGA, "nouveau", 7, boot_vga=False, reset_method="bus", rom=True),
            FakeDevice("0000:02:00.1", 0x10DE, 0x0FB9, HDA, "snd_hda_intel", 7),
            FakeDevice("0000:03:00.0", 0x8086, 0x15B8, NIC, "e1000e", 7, reset_method="flr"),
        ],
    )
