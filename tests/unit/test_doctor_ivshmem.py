from __future__ import annotations

import os
import stat
from pathlib import Path

from tests import fakehost
from vmforge.doctor import checks_ivshmem as iv
from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import Status

MIB = 1024**2


def test_size_power_of_two_and_large_enough() -> None:
    assert iv.check_ivshmem_size(None, 1920, 1080).status is Status.SKIP
    assert iv.check_ivshmem_size(32 * MIB, 1920, 1080).status is Status.PASS
    small = iv.check_ivshmem_size(32 * MIB, 3840, 2160)
    assert small.status is Status.FAIL and 'ivshmem.size = "128MiB"' in (small.fix or "")
    odd = iv.check_ivshmem_size(48 * MIB, 1920, 1080)
    assert odd.status is Status.FAIL and "not a power of two" in odd.summary


def test_shm_space(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    assert iv.check_shm_space(fs, 32 * MIB, "vmforge-win").status is Status.PASS
    huge = iv.check_shm_space(fs, 1 << 60, "vmforge-win")
    assert huge.status is Status.FAIL and "remount" in (huge.fix or "")
    assert iv.check_shm_space(fs, None, None).status is Status.SKIP


def test_backing_file_mode(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    missing = iv.check_shm_file(fs, "vmforge-win")
    assert missing.status is Status.WARN and "f /dev/shm/vmforge-win 0660" in (missing.fix or "")
    backing = tmp_path / "dev/shm/vmforge-win"
    backing.write_bytes(b"")
    os.chmod(backing, 0o600)
    private = iv.check_shm_file(fs, "vmforge-win")
    assert private.status is Status.WARN and private.evidence == ("/dev/shm/vmforge-win: root:root 0600",)
    os.chown(backing, 0, fakehost.KVM_GID)
    os.chmod(backing, 0o660)
    assert iv.check_shm_file(fs, "vmforge-win").status is Status.PASS
    backing.unlink()
    backing.mkdir()
    assert iv.check_shm_file(fs, "vmforge-win").status is Status.FAIL


def test_kvmfr_char_device_or_stray_regular_file(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    assert iv.check_kvmfr(fs, used=False).status is Status.SKIP
    missing = iv.check_kvmfr(fs, used=True)
    assert missing.status is Status.FAIL and "modprobe kvmfr" in (missing.fix or "")
    stray = fakehost.write(tmp_path, "/dev/kvmfr0", "")
    assert iv.check_kvmfr(fs, used=True).status is Status.FAIL
    unused = iv.check_kvmfr(fs, used=False)
    assert unused.status is Status.WARN and "regular file" in unused.summary
    stray.unlink()
    os.mknod(stray, stat.S_IFCHR | 0o660, os.makedev(240, 0))
    assert iv.check_kvmfr(fs, used=True).status is Status.PASS


def test_kvmfr_acl_in_qemu_conf_and_apparmor(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fakehost.write(tmp_path, "/sys/module/apparmor/parameters/enabled", "Y\n")
    assert iv.check_device_acl(fs, "/dev/kvmfr0", used=False).status is Status.SKIP
    result = iv.check_device_acl(fs, "/dev/kvmfr0", used=True)
    assert result.status is Status.FAIL
    assert "not in cgroup_device_acl" in result.summary and "AppArmor does not let QEMU" in result.summary
    fakehost.write(
        tmp_path,
        "/etc/libvirt/qemu.conf",
        'cgroup_device_acl = [\n    "/dev/null", "/dev/full", "/dev/zero",\n    "/dev/kvm", "/dev/kvmfr0"\n]\n',
    )
    fakehost.write(tmp_path, iv.APPARMOR_LOCAL, "/dev/kvmfr0 rw,\n")
    assert iv.check_device_acl(fs, "/dev/kvmfr0", used=True).status is Status.PASS
    fakehost.write(tmp_path, "/sys/module/apparmor/parameters/enabled", "N\n")
    (tmp_path / iv.APPARMOR_LOCAL.lstrip("/")).unlink()
    assert iv.check_device_acl(fs, "/dev/kvmfr0", used=True).status is Status.PASS
