from __future__ import annotations

from pathlib import Path

from tests import fakehost
from vmforge.doctor.checks_kvm import check_kvm_access, check_kvm_device
from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import Status
from vmforge.spec import VirtType


def test_kvm_device_present_passes_with_its_owner_and_mode(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.dev_kvm(tmp_path, 0o660)
    result = check_kvm_device(fs, VirtType.KVM)
    assert result.status is Status.PASS
    assert result.evidence == ("/dev/kvm: char 10:232, root:kvm 0660",)


def test_kvm_device_missing_fails_for_kvm_and_is_skipped_for_tcg(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    result = check_kvm_device(fs, VirtType.KVM)
    assert result.status is Status.FAIL
    assert result.fix and "modprobe kvm_intel" in result.fix and 'virt_type = "qemu"' in result.fix
    assert check_kvm_device(fs, VirtType.QEMU).status is Status.SKIP


def test_kvm_device_that_is_a_plain_file_fails(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.write(tmp_path, "/dev/kvm", "")
    assert check_kvm_device(fs, VirtType.KVM).status is Status.FAIL


def test_kvm_group_0660_lets_libvirt_qemu_in(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.dev_kvm(tmp_path, 0o660)
    result = check_kvm_access(fs, fs.identity(fs.qemu_user()), VirtType.KVM)
    assert result.status is Status.PASS
    assert "libvirt-qemu (uid 64055, gids [108, 64055])" in result.evidence[1]


def test_root_only_kvm_without_udev_fails_and_explains_the_reprobe(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.dev_kvm(tmp_path, 0o600, gid=0)
    result = check_kvm_access(fs, fs.identity("libvirt-qemu"), VirtType.KVM)
    assert result.status is Status.FAIL
    assert "KVM was enabled when probing, but it is not available now" in result.summary
    assert result.fix and result.fix.startswith("chgrp kvm /dev/kvm && chmod 0660 /dev/kvm")
    assert result.evidence[0] == "/dev/kvm: root:root 0600"
    # Under TCG the guest still runs, but libvirt re-probes on every call: a warning.
    assert check_kvm_access(fs, fs.identity("libvirt-qemu"), VirtType.QEMU).status is Status.WARN


def test_kvm_group_without_the_qemu_user_fails(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.write(tmp_path, "/etc/group", "root:x:0:\nkvm:x:108:\nlibvirt-qemu:x:64055:\n")
    fakehost.dev_kvm(tmp_path, 0o660)
    # libvirt-qemu's primary group in the fake passwd is kvm (108), as on Debian: still allowed.
    assert check_kvm_access(fs, fs.identity("libvirt-qemu"), VirtType.KVM).status is Status.PASS
    fakehost.write(tmp_path, "/etc/passwd", fakehost.PASSWD.replace("64055:108", "64055:64055"))
    assert check_kvm_access(fs, fs.identity("libvirt-qemu"), VirtType.KVM).status is Status.FAIL


def test_qemu_user_from_qemu_conf_and_unknown_user_warns(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.write(tmp_path, "/etc/libvirt/qemu.conf", 'user = "qemu"\ngroup = "qemu"\n')
    fakehost.dev_kvm(tmp_path)
    assert fs.qemu_user() == "qemu"
    result = check_kvm_access(fs, fs.identity(fs.qemu_user()), VirtType.KVM)
    assert result.status is Status.WARN and "not in /etc/passwd" in result.summary


def test_kvm_inside_a_virtual_machine_points_at_the_boot_test(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.dev_kvm(tmp_path)
    fakehost.write(tmp_path, "/proc/cpuinfo", "vendor_id\t: GenuineIntel\nflags\t\t: fpu vmx hypervisor\n")
    result = check_kvm_device(fs, VirtType.KVM)
    assert result.status is Status.PASS and "--boot-test" in result.summary and "nested" in result.summary
