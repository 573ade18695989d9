from __future__ import annotations

from pathlib import Path

import pytest

from tests import fakesysfs
from vmforge.errors import SpecError, VmforgeError
from vmforge.host.pci import PciAddress, PciHost, passthrough_devices, select_devices


def addresses(devices) -> list[str]:
    return [str(d.address) for d in devices]


def test_reads_every_attribute(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    assert host.iommu_enabled()
    gpu = host.device(PciAddress.parse("0000:01:00.0"))
    assert gpu is not None
    assert gpu.id == "10de:2204" and gpu.is_display and not gpu.is_bridge
    assert (gpu.driver, gpu.iommu_group, gpu.boot_vga, gpu.reset_methods, gpu.has_rom) == (
        "vfio-pci",
        1,
        False,
        ("bus",),
        True,
    )
    igpu = host.device(PciAddress.parse("0000:00:02.0"))
    assert igpu is not None and igpu.boot_vga is True and igpu.reset_methods == ("flr", "bus")
    audio = host.device(PciAddress.parse("0000:01:00.1"))
    assert audio is not None and audio.boot_vga is None and not audio.has_rom
    assert addresses(host.display_devices()) == ["0000:00:02.0", "0000:01:00.0"]
    assert addresses(host.group_members(1)) == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"]


def test_gpu_by_address_brings_its_audio_function_not_the_bridge(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    assert addresses(passthrough_devices(host, ("0000:01:00.0",))) == ["0000:01:00.0", "0000:01:00.1"]


def test_gpu_by_vendor_device_id(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    assert addresses(passthrough_devices(host, ("10DE:2204",))) == ["0000:01:00.0", "0000:01:00.1"]


def test_single_gpu_desktop_expands_and_reports_boot_vga(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.single_gpu_desktop(tmp_path))
    devices = passthrough_devices(host, ("1002:73bf",))
    assert addresses(devices) == ["0000:03:00.0", "0000:03:00.1"]
    assert devices[0].boot_vga is True and devices[0].driver == "amdgpu"


def test_shared_group_is_refused_naming_the_stranger(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.gpu_shares_group_with_usb(tmp_path))
    with pytest.raises(
        VmforgeError, match=r"IOMMU group 12 of 0000:01:00.0 also holds 0000:02:00.0 \(1b21:1242"
    ) as err:
        passthrough_devices(host, ("0000:01:00.0",))
    assert err.value.hint and "allow_shared_group" in err.value.hint


def test_shared_group_passes_with_the_stranger_named_or_overridden(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.gpu_shares_group_with_usb(tmp_path))
    both = passthrough_devices(host, ("0000:01:00.0", "0000:02:00.0"))
    assert addresses(both) == ["0000:01:00.0", "0000:01:00.1", "0000:02:00.0"]
    only_card = passthrough_devices(host, ("0000:01:00.0",), allow_shared_group=True)
    assert addresses(only_card) == ["0000:01:00.0", "0000:01:00.1"]


def test_iommu_off_is_refused(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.iommu_off(tmp_path))
    assert not host.iommu_enabled()
    assert host.device(PciAddress.parse("0000:01:00.0")).iommu_group is None  # type: ignore[union-attr]
    with pytest.raises(VmforgeError, match="no IOMMU groups") as err:
        passthrough_devices(host, ("0000:01:00.0",))
    assert err.value.hint and "intel_iommu=on" in err.value.hint


def test_missing_device_and_non_display_device(tmp_path: Path) -> None:
    host = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    with pytest.raises(SpecError, match=r"0000:09:00\.0 does not exist"):
        select_devices(host, "0000:09:00.0")
    with pytest.raises(SpecError, match=r"no PCI device with id 1234:5678"):
        select_devices(host, "1234:5678")
    with pytest.raises(SpecError, match=r"0000:01:00.1 \(class 0x040300\) is not a display device"):
        passthrough_devices(host, ("0000:01:00.1",))


def test_discovery_on_this_machine_real_sys() -> None:
    host = PciHost(Path("/"))
    devices = host.devices()
    real = sorted(p.name for p in Path("/sys/bus/pci/devices").iterdir())
    assert addresses(devices) == real
    for device in devices:
        raw = Path("/sys/bus/pci/devices", str(device.address), "class").read_text().strip()
        assert device.class_code == int(raw, 16)
