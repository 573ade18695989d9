from __future__ import annotations

import os
from pathlib import Path

from tests import fakehost
from vmforge.doctor.checks_storage import check_storage
from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import Status

GIB = 1024**3
POOL = Path("/var/lib/vmforge/images")


def test_pool_folder_reachable_with_room_passes(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fs.path(POOL).mkdir(parents=True)
    qemu = fs.identity("libvirt-qemu")
    result = check_storage(fs, POOL, 1 * GIB, qemu, available=100 * GIB)
    assert result.status is Status.PASS
    assert result.evidence[0] == "/var/lib/vmforge/images: exists"


def test_missing_pool_folder_is_judged_by_its_nearest_parent(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fs.path("/var/lib").mkdir(parents=True)
    result = check_storage(fs, POOL, 1, fs.identity("libvirt-qemu"))
    assert result.status is Status.PASS
    assert result.evidence[0].endswith("missing; nearest folder " + str(tmp_path / "var/lib"))


def test_folder_qemu_cannot_enter_fails(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    home = fs.path("/root/vms")
    home.mkdir(parents=True)
    os.chmod(fs.path("/root"), 0o700)
    result = check_storage(fs, Path("/root/vms"), 1, fs.identity("libvirt-qemu"), available=10 * GIB)
    assert result.status is Status.FAIL
    assert "cannot enter /root (root:root 0700)" in result.summary
    assert result.fix and result.fix.startswith("chmod o+x /root")


def test_too_little_room_warns(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fs.path(POOL).mkdir(parents=True)
    result = check_storage(fs, POOL, 64 * GIB, fs.identity("libvirt-qemu"), available=10 * GIB)
    assert result.status is Status.WARN and "only 10GiB is free" in result.summary


def test_session_pool_must_be_writable_by_the_user(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    folder = fs.path("/home/alice/images")
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)  # owned by root here: alice may enter but not write
    alice = fs.identity("alice")
    result = check_storage(fs, Path("/home/alice/images"), 1, alice, available=GIB, creator_is_qemu=True)
    assert result.status is Status.FAIL and "alice cannot write" in result.summary
    os.chown(folder, 1000, 1000)
    assert check_storage(fs, Path("/home/alice/images"), 1, alice, creator_is_qemu=True).status is Status.PASS


def test_remote_pool_is_skipped(tmp_path: Path) -> None:
    assert check_storage(HostFs(tmp_path), None, 1, None).status is Status.SKIP


def test_dynamic_ownership_off_fails_on_system(tmp_path: Path) -> None:
    fs = HostFs(fakehost.base(tmp_path))
    fs.path(POOL).mkdir(parents=True)
    fakehost.write(tmp_path, "/etc/libvirt/qemu.conf", "dynamic_ownership = 0\n")
    assert fs.qemu_conf_value("dynamic_ownership") == "0"
    result = check_storage(fs, POOL, 1, fs.identity("libvirt-qemu"), available=GIB, dynamic_ownership=False)
    assert result.status is Status.FAIL and "dynamic_ownership = 0" in result.summary
