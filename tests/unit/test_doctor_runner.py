"""Whole doctor runs against fake host trees, with libvirt's test driver answering domain
capabilities as the real daemon did (tests/data/domcaps, recorded from libvirt 9.0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests import fakehost, fakesysfs
from tests.conftest import REPO
from vmforge.doctor.model import Report, Status
from vmforge.doctor.runner import run_doctor
from vmforge.errors import LibvirtError
from vmforge.spec import parse_spec

RECORDED_CAPS = {
    virt_type: (REPO / f"tests/data/domcaps/{virt_type}-q35-libvirt9.0.xml").read_text()
    for virt_type in ("kvm", "qemu")
}
ALL_IDS = [
    "spec.plan", "libvirt.reachable", "libvirt.versions", "libvirt.domcaps", "libvirt.cpu-mode", "firmware.uefi",
    "firmware.vars-template", "tpm.swtpm", "kvm.device", "kvm.access", "storage.pool", "iommu.enabled", "gpu.group",
    "gpu.driver", "gpu.single-gpu", "gpu.rom", "gpu.reset", "vfio.modules", "vfio.memlock", "memory.hugepages",
    "ivshmem.size", "ivshmem.shm-space", "ivshmem.shm-file", "ivshmem.kvmfr", "ivshmem.kvmfr-acl",
    "media.windows-iso", "media.windows-iso-inspect", "media.windows-iso-sha256", "media.virtio-win",
    "packages.verify", "kvm.boot",
]  # fmt: skip


class RecordedCapsConnection:
    """libvirt's test driver, but getDomainCapabilities answers with the recorded real XML."""

    def __init__(self) -> None:
        self._conn = libvirt.open("test:///default")

    def getDomainCapabilities(self, _emulator: Any, _arch: str, _machine: str, virt_type: str, _flags: int) -> str:
        return RECORDED_CAPS[virt_type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def recorded(_uri: str) -> Any:
    return RecordedCapsConnection()


def unreachable(uri: str) -> Any:
    raise LibvirtError(f"cannot connect to libvirt at {uri}: no socket", hint="is libvirtd running?")


def spec(**sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {"windows": {"family": "11"}, "vm": {"connect": "qemu:///system"}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_spec(data, label="test")


def firmware_tree(root: Path) -> None:
    """The OVMF descriptors Debian ships, and swtpm."""
    folder = root / "usr/share/qemu/firmware"
    folder.mkdir(parents=True)
    for source in (REPO / "tests/data/firmware").iterdir():
        (folder / source.name).write_text(source.read_text())
    fakehost.write(root, "/usr/bin/swtpm", "")


def statuses(report: Report) -> dict[str, str]:
    return {r.id: r.status.value for r in report.results}


def test_healthy_two_gpu_workstation(tmp_path: Path) -> None:
    fakesysfs.two_gpu_workstation(tmp_path)
    fakehost.base(
        tmp_path,
        cmdline="ro quiet intel_iommu=on iommu=pt",
        modules=("kvm", "kvm_intel", "vfio", "vfio_iommu_type1", "vfio_pci"),
        processes=("gdm3", "Xorg"),
    )
    fakehost.dev_kvm(tmp_path)
    firmware_tree(tmp_path)
    report = run_doctor(spec(gpu={"devices": ["10de:2204"]}), root=tmp_path, connector=recorded)
    assert [r.id for r in report.results] == ALL_IDS
    got = statuses(report)
    for check in ("spec.plan", "libvirt.reachable", "libvirt.domcaps", "firmware.uefi", "firmware.vars-template",
                  "tpm.swtpm", "kvm.device", "kvm.access", "storage.pool", "iommu.enabled", "gpu.group",
                  "gpu.driver", "gpu.single-gpu", "gpu.rom", "gpu.reset", "vfio.modules", "vfio.memlock"):  # fmt: skip
        assert got[check] == "pass", (check, report.get(check))
    assert report.get("firmware.vars-template").summary.endswith("OVMF_VARS_4M.ms.fd")
    # No ISOs in this spec: the Windows inputs fail, so the whole run fails (exit 3).
    assert [r.id for r in report.failures] == ["media.windows-iso", "media.virtio-win"]
    assert report.to_data()["counts"]["fail"] == 2


def test_single_gpu_desktop(tmp_path: Path) -> None:
    fakesysfs.single_gpu_desktop(tmp_path)
    fakehost.base(tmp_path, cpu_vendor="AuthenticAMD", framebuffers=("EFI VGA",), processes=("sddm",))
    fakehost.dev_kvm(tmp_path)
    report = run_doctor(spec(gpu={"devices": ["0000:03:00.0"]}), root=tmp_path, connector=recorded)
    got = statuses(report)
    assert (got["gpu.group"], got["gpu.driver"], got["gpu.single-gpu"], got["gpu.rom"]) == (
        "pass", "warn", "fail", "warn",
    )  # fmt: skip
    assert got["vfio.modules"] == "warn"


def test_iommu_disabled(tmp_path: Path) -> None:
    fakesysfs.iommu_off(tmp_path)
    fakehost.base(tmp_path)
    fakehost.dev_kvm(tmp_path)
    report = run_doctor(spec(gpu={"devices": ["0000:01:00.0"]}), root=tmp_path, connector=recorded)
    got = statuses(report)
    assert got["iommu.enabled"] == "fail" and got["gpu.group"] == "fail"
    assert {got[i] for i in ("gpu.driver", "gpu.single-gpu", "gpu.rom", "gpu.reset")} == {"skip"}
    assert report.get("gpu.driver").summary == "no device to look at (see gpu.group)"


def test_gpu_sharing_its_group_with_a_usb_controller(tmp_path: Path) -> None:
    fakesysfs.gpu_shares_group_with_usb(tmp_path)
    fakehost.base(tmp_path, cmdline="intel_iommu=on")
    fakehost.dev_kvm(tmp_path)
    report = run_doctor(spec(gpu={"devices": ["0000:01:00.0"]}), root=tmp_path, connector=recorded)
    assert report.get("gpu.group").status is Status.FAIL and "0000:02:00.0" in report.get("gpu.group").summary


def test_no_gpu_no_ivshmem_skips_with_reasons(tmp_path: Path) -> None:
    fakesysfs.two_gpu_workstation(tmp_path)
    fakehost.base(tmp_path)
    fakehost.dev_kvm(tmp_path)
    report = run_doctor(spec(vm={"virt_type": "qemu", "tpm": "off", "firmware": "bios"}), root=tmp_path,
                        connector=recorded)  # fmt: skip
    got = statuses(report)
    for check in ("iommu.enabled", "gpu.group", "vfio.memlock", "ivshmem.size", "ivshmem.kvmfr", "firmware.uefi",
                  "tpm.swtpm", "kvm.device", "kvm.boot"):  # fmt: skip
        assert got[check] == "skip", check
        assert report.get(check).summary


def test_ivshmem_enabled(tmp_path: Path) -> None:
    fakehost.base(tmp_path)
    fakesysfs.build(tmp_path, [])
    report = run_doctor(
        spec(ivshmem={"enabled": True}, display={"resolution": "3840x2160"}), root=tmp_path, connector=recorded
    )
    got = statuses(report)
    assert (got["ivshmem.size"], got["ivshmem.shm-space"], got["ivshmem.shm-file"]) == ("pass", "pass", "warn")
    assert "128MiB" in report.get("ivshmem.size").summary
    assert "/dev/shm/vmforge-win" in report.get("ivshmem.shm-file").summary


def test_unreachable_libvirt_and_unknown_family(tmp_path: Path) -> None:
    fakehost.base(tmp_path)
    fakesysfs.build(tmp_path, [])
    report = run_doctor(parse_spec({}, label="defaults"), root=tmp_path, connector=unreachable)
    got = statuses(report)
    assert got["spec.plan"] == "warn" and "Windows 11" in report.get("spec.plan").summary
    assert got["libvirt.reachable"] == "fail"
    assert (got["libvirt.versions"], got["libvirt.domcaps"], got["firmware.uefi"]) == ("skip", "skip", "skip")
    assert got["kvm.device"] == "fail"  # the default virt_type is kvm and this tree has no /dev/kvm


def test_remote_host_skips_local_checks(tmp_path: Path) -> None:
    report = run_doctor(spec(vm={"connect": "qemu+ssh://gpu-box/system"}), root=tmp_path, connector=unreachable)
    for check in ("kvm.device", "iommu.enabled", "ivshmem.shm-space", "storage.pool"):
        assert report.get(check).status is Status.SKIP, check


def test_boot_test_uses_the_booter_source(tmp_path: Path) -> None:
    fakehost.base(tmp_path)
    fakesysfs.build(tmp_path, [])
    report = run_doctor(
        spec(), root=tmp_path, connector=recorded, boot_test=True, booter_source=lambda _spec: (None, "no builder here")
    )
    result = report.get("kvm.boot")
    assert result.status is Status.SKIP and result.summary == "no probe image to boot: no builder here"


@pytest.mark.parametrize("status", list(Status))
def test_status_values_are_the_json_contract(status: Status) -> None:
    assert status.value in ("pass", "warn", "fail", "skip")


def test_hugepages_follow_vm_hugepages(tmp_path: Path) -> None:
    """vm.hugepages asks for the guest's whole memory in free hugepages; without it the check skips."""
    from vmforge.doctor.hostfs import HostFs
    from vmforge.doctor.runner import gpu_checks

    fakehost.base(tmp_path, hugepages=(1024, 1024))  # 2 GiB free in 2 MiB pages
    fs = HostFs(tmp_path)

    def status(**vm: Any) -> Status:
        results = gpu_checks(fs, spec(vm=vm), local=True, system_uri=True)
        return next(r for r in results if r.id == "memory.hugepages").status

    assert status(memory="8GiB") is Status.SKIP
    assert status(memory="2GiB", hugepages=True) is Status.PASS
    assert status(memory="8GiB", hugepages=True) is Status.FAIL
