"""/dev/kvm: present, and openable by the user QEMU runs as."""

from __future__ import annotations

import os
import stat

from vmforge.doctor.hostfs import HostFs, Identity
from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.spec import VirtType

KVM_MISSING_FIX = (
    "enable VT-x/AMD-V in the firmware and load the module (modprobe kvm_intel or modprobe kvm_amd); "
    'inside a VM enable nested virtualisation on its host; or set vm.virt_type = "qemu" (TCG, slow)'
)
KVM_ACCESS_FIX = (
    "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm (what udev's rules do; scripts/setup-host does it on hosts "
    "without udev), make sure QEMU's user is in group kvm, then restart libvirtd"
)


def check_kvm_device(fs: HostFs, virt_type: VirtType) -> CheckResult:
    path = fs.path("/dev/kvm")
    if virt_type is VirtType.QEMU and not path.exists():
        return skipped("kvm.device", "vm.virt_type = 'qemu' (TCG) does not use /dev/kvm; it is absent")
    if not path.exists():
        return failed("kvm.device", "/dev/kvm does not exist: no hardware virtualisation", KVM_MISSING_FIX)
    info = path.stat()
    if not stat.S_ISCHR(info.st_mode):
        return failed(
            "kvm.device", "/dev/kvm is not a character device", f"remove it and reload kvm ({KVM_MISSING_FIX})"
        )
    evidence = f"/dev/kvm: char {os.major(info.st_rdev)}:{os.minor(info.st_rdev)}, {fs.owner(path)}"
    if virt_type is VirtType.QEMU:
        return skipped("kvm.device", "vm.virt_type = 'qemu' (TCG) does not use /dev/kvm", evidence)
    if fs.is_virtual_machine():
        return passed(
            "kvm.device",
            "/dev/kvm exists, but this host is itself a virtual machine: KVM here is nested, which often hangs "
            "guests; run 'vmforge doctor --boot-test' to know",
            evidence,
            "/proc/cpuinfo flags include 'hypervisor'",
        )
    return passed(
        "kvm.device",
        "/dev/kvm exists (whether a guest really runs on it only --boot-test shows)",
        evidence,
    )


def check_kvm_access(fs: HostFs, qemu: Identity | None, virt_type: VirtType) -> CheckResult:
    path = fs.path("/dev/kvm")
    if not path.exists():
        return skipped("kvm.access", "/dev/kvm does not exist")
    evidence = [f"/dev/kvm: {fs.owner(path)}"]
    if qemu is None:
        return warned(
            "kvm.access",
            "QEMU's user is not in /etc/passwd, so access to /dev/kvm cannot be judged",
            'set user = "..." in /etc/libvirt/qemu.conf to an existing user',
            *evidence,
        )
    evidence.append(f"QEMU runs as {qemu.name} (uid {qemu.uid}, gids {sorted(qemu.gids)})")
    if qemu.can(path, os.R_OK | os.W_OK):
        return passed("kvm.access", f"{qemu.name} can open /dev/kvm read-write", *evidence)
    consequence = (
        f"{qemu.name} cannot open /dev/kvm. libvirt probes QEMU as that user, so it sees no KVM; libvirt 9.0 then "
        "re-probes QEMU on every call (slow) and refuses KVM guests with 'KVM was enabled when probing, "
        "but it is not available now'"
    )
    if virt_type is VirtType.QEMU:
        return warned("kvm.access", consequence + " (TCG guests still run)", KVM_ACCESS_FIX, *evidence)
    return failed("kvm.access", consequence, KVM_ACCESS_FIX, *evidence)
