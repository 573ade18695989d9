from __future__ import annotations

from pathlib import Path

from tests import fakehost, fakesysfs
from vmforge.doctor import checks_gpu as gpu
from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import Status
from vmforge.host.pci import PciHost

GIB = 1024**3


def host(tmp_path: Path, layout, **base_kwargs) -> tuple[HostFs, PciHost]:  # type: ignore[no-untyped-def]
    layout(tmp_path)
    fakehost.base(tmp_path, **base_kwargs)
    return HostFs(tmp_path), PciHost(tmp_path)


def test_iommu_on_passes_with_the_cmdline_flags(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.two_gpu_workstation, cmdline="ro quiet intel_iommu=on iommu=pt")
    result = gpu.check_iommu(fs, pci, needed=True)
    assert result.status is Status.PASS
    assert result.evidence == (
        "kernel command line IOMMU flags: intel_iommu=on iommu=pt",
        "/sys/kernel/iommu_groups: 3 groups",
    )


def test_iommu_off_fails_with_the_vendors_flag(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.iommu_off, cpu_vendor="AuthenticAMD")
    result = gpu.check_iommu(fs, pci, needed=True)
    assert result.status is Status.FAIL
    assert "no IOMMU groups" in result.summary
    assert result.fix and "amd_iommu=on iommu=pt" in result.fix and "update-grub" in result.fix
    fakehost.write(tmp_path, "/proc/cpuinfo", "vendor_id\t: GenuineIntel\n")
    assert "intel_iommu=on" in (gpu.check_iommu(fs, pci, needed=True).fix or "")


def test_iommu_turned_off_on_the_cmdline_is_named(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.iommu_off, cmdline="ro intel_iommu=off")
    assert "turns the IOMMU off" in gpu.check_iommu(fs, pci, needed=True).summary


def test_iommu_without_gpu_is_skipped_but_still_shows_the_state(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.iommu_off)
    result = gpu.check_iommu(fs, pci, needed=False)
    assert result.status is Status.SKIP and result.evidence[1] == "/sys/kernel/iommu_groups: 0 groups"


def test_isolated_group_passes_with_the_bridge_set_aside(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.two_gpu_workstation)
    result, devices = gpu.check_gpu_group(pci, ("10de:2204",), allow_shared=False)
    assert result.status is Status.PASS
    assert [str(d.address) for d in devices] == ["0000:01:00.0", "0000:01:00.1"]
    assert "group 1: 0000:00:01.0 8086:1901 class 0x060400 (bridge, stays on the host)" in result.evidence


def test_group_shared_with_a_usb_controller_fails_naming_it(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.gpu_shares_group_with_usb)
    result, devices = gpu.check_gpu_group(pci, ("0000:01:00.0",), allow_shared=False)
    assert result.status is Status.FAIL and not devices
    assert "0000:02:00.0 (1b21:1242" in result.summary
    assert result.fix and "allow_shared_group" in result.fix


def test_group_shared_with_a_nic_fails_and_the_override_warns(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakehost.gpu_shares_group_with_nic)
    result, _ = gpu.check_gpu_group(pci, ("0000:02:00.0",), allow_shared=False)
    assert result.status is Status.FAIL and "0000:03:00.0 (8086:15b8" in result.summary
    result, devices = gpu.check_gpu_group(pci, ("0000:02:00.0",), allow_shared=True)
    assert result.status is Status.WARN and "0000:03:00.0" in result.summary
    assert [str(d.address) for d in devices] == ["0000:02:00.0", "0000:02:00.1"]


def test_missing_device_fails_the_group_check(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.two_gpu_workstation)
    result, _ = gpu.check_gpu_group(pci, ("0000:09:00.0",), allow_shared=False)
    assert result.status is Status.FAIL and "does not exist" in result.summary


def test_driver_vfio_passes_host_driver_warns_with_the_ids(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.two_gpu_workstation)
    _, devices = gpu.check_gpu_group(pci, ("0000:01:00.0",), allow_shared=False)
    assert gpu.check_gpu_driver(devices).status is Status.PASS
    _, pci = host(tmp_path / "b", fakesysfs.single_gpu_desktop)
    _, devices = gpu.check_gpu_group(pci, ("0000:03:00.0",), allow_shared=False)
    result = gpu.check_gpu_driver(devices)
    assert result.status is Status.WARN
    assert "0000:03:00.0 (amdgpu)" in result.summary and "0000:03:00.1 (snd_hda_intel)" in result.summary
    assert result.fix and "vfio-pci.ids=1002:73bf,1002:ab28" in result.fix


def test_second_gpu_is_not_a_single_gpu_host(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.two_gpu_workstation, framebuffers=("inteldrmfb",), processes=("gdm3", "Xorg"))
    _, devices = gpu.check_gpu_group(pci, ("0000:01:00.0",), allow_shared=False)
    result = gpu.check_single_gpu(fs, pci, devices)
    assert result.status is Status.PASS
    assert "other display devices on the host: 0000:00:02.0 (i915)" in result.evidence


def test_single_gpu_desktop_fails_and_explains_the_consequences(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakesysfs.single_gpu_desktop, framebuffers=("EFI VGA",), processes=("sddm", "Xorg"))
    _, devices = gpu.check_gpu_group(pci, ("1002:73bf",), allow_shared=False)
    result = gpu.check_single_gpu(fs, pci, devices)
    assert result.status is Status.FAIL
    assert "the host has no other display" in result.summary
    assert "boot VGA" in result.summary and "Xorg, sddm" in result.summary
    assert result.fix and "video=efifb:off" in result.fix
    assert "framebuffers (/proc/fb): EFI VGA" in result.evidence


def test_boot_vga_card_with_another_display_warns(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakehost.gpu_shares_group_with_nic)
    # Make the passed NVIDIA card the boot VGA while the iGPU stays.
    (tmp_path / "sys/devices/pci0000:00/0000:02:00.0/boot_vga").write_text("1\n")
    (tmp_path / "sys/devices/pci0000:00/0000:00:02.0/boot_vga").write_text("0\n")
    _, devices = gpu.check_gpu_group(pci, ("0000:02:00.0",), allow_shared=True)
    assert gpu.check_single_gpu(fs, pci, devices).status is Status.WARN


def test_rom_bar_passes_missing_rom_warns_rom_file_checked(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.two_gpu_workstation)
    _, devices = gpu.check_gpu_group(pci, ("0000:01:00.0",), allow_shared=False)
    assert gpu.check_gpu_rom(devices, None).status is Status.PASS
    good = tmp_path / "good.rom"
    good.write_bytes(b"\x55\xaa" + b"\0" * 510)
    assert gpu.check_gpu_rom(devices, good).status is Status.PASS
    bad = tmp_path / "nvflash.rom"
    bad.write_bytes(b"NVGI" + b"\0" * 508)
    result = gpu.check_gpu_rom(devices, bad)
    assert result.status is Status.FAIL and "55 AA" in result.summary
    assert gpu.check_gpu_rom(devices, tmp_path / "missing.rom").status is Status.FAIL
    _, pci = host(tmp_path / "usb", fakesysfs.gpu_shares_group_with_usb)
    _, devices = gpu.check_gpu_group(pci, ("0000:01:00.0", "0000:02:00.0"), allow_shared=False)
    result = gpu.check_gpu_rom(devices, None)
    assert result.status is Status.WARN and "exposes no ROM BAR" in result.summary


def test_boot_vga_rom_warns_to_give_a_rom_file(tmp_path: Path) -> None:
    _, pci = host(tmp_path, fakesysfs.single_gpu_desktop)
    _, devices = gpu.check_gpu_group(pci, ("0000:03:00.0",), allow_shared=False)
    result = gpu.check_gpu_rom(devices, None)
    assert result.status is Status.WARN and "boot VGA" in result.summary


def test_navi10_without_vendor_reset_fails(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakehost.navi10_without_vendor_reset)
    _, devices = gpu.check_gpu_group(pci, ("1002:731f",), allow_shared=False)
    result = gpu.check_gpu_reset(fs, devices)
    assert result.status is Status.FAIL
    assert "AMD Navi10" in result.summary and "vendor-reset is not loaded" in result.summary
    assert result.fix and "echo device_specific > /sys/bus/pci/devices/0000:01:00.0/reset_method" in result.fix


def test_navi10_with_vendor_reset_selected_passes(tmp_path: Path) -> None:
    fs, pci = host(tmp_path, fakehost.navi10_without_vendor_reset, modules=("vendor_reset",))
    (tmp_path / "sys/devices/pci0000:00/0000:01:00.0/reset_method").write_text("device_specific\n")
    _, devices = gpu.check_gpu_group(pci, ("1002:731f",), allow_shared=False)
    assert gpu.check_gpu_reset(fs, devices).status is Status.PASS
    (tmp_path / "sys/devices/pci0000:00/0000:01:00.0/reset_method").write_text("bus\n")
    _, devices = gpu.check_gpu_group(pci, ("1002:731f",), allow_shared=False)
    result = gpu.check_gpu_reset(fs, devices)
    assert result.status is Status.FAIL and "loaded but not selected" in result.summary


def test_vega10_is_known_and_nvidia_with_bus_reset_passes(tmp_path: Path) -> None:
    vega = fakesysfs.FakeDevice("0000:0a:00.0", 0x1002, 0x687F, fakesysfs.VGA, "amdgpu", 3, reset_method="bus")
    fakesysfs.build(tmp_path, [vega])
    fakehost.base(tmp_path)
    fs, pci = HostFs(tmp_path), PciHost(tmp_path)
    assert "Vega10" in gpu.check_gpu_reset(fs, pci.devices()).summary
    _, pci = host(tmp_path / "b", fakesysfs.two_gpu_workstation)
    _, devices = gpu.check_gpu_group(pci, ("0000:01:00.0",), allow_shared=False)
    assert gpu.check_gpu_reset(HostFs(tmp_path / "b"), devices).status is Status.PASS


def test_gpu_without_any_reset_method_warns(tmp_path: Path) -> None:
    card = fakesysfs.FakeDevice("0000:05:00.0", 0x10DE, 0x1C82, fakesysfs.VGA, None, 4)
    fakesysfs.build(tmp_path, [card])
    fakehost.base(tmp_path)
    result = gpu.check_gpu_reset(HostFs(tmp_path), PciHost(tmp_path).devices())
    assert result.status is Status.WARN and "no reset method" in result.summary


def test_vfio_modules(tmp_path: Path) -> None:
    fakehost.base(tmp_path, modules=("vfio", "vfio_iommu_type1"))
    fs = HostFs(tmp_path)
    result = gpu.check_vfio_modules(fs, needed=True)
    assert result.status is Status.WARN and result.summary.startswith("vfio_pci not loaded")
    (tmp_path / "sys/module/vfio_pci").mkdir()
    assert gpu.check_vfio_modules(fs, needed=True).status is Status.PASS
    assert gpu.check_vfio_modules(fs, needed=False).status is Status.SKIP


def test_memlock_session_needs_guest_memory_system_is_handled_by_libvirt(tmp_path: Path) -> None:
    fakehost.base(tmp_path, memlock="8388608")
    fs = HostFs(tmp_path)
    result = gpu.check_memlock(fs, 8 * GIB, needed=True, system_uri=False)
    assert result.status is Status.FAIL and "9GiB" in result.summary and "8MiB" in result.summary
    assert gpu.check_memlock(fs, 8 * GIB, needed=True, system_uri=True).status is Status.PASS
    fakehost.write(tmp_path, "/proc/self/limits", fakehost.LIMITS.format(memlock="unlimited"))
    assert gpu.check_memlock(fs, 8 * GIB, needed=True, system_uri=False).status is Status.PASS


def test_hugepages_counted_against_the_request(tmp_path: Path) -> None:
    fakehost.base(tmp_path, hugepages=(4096, 2048))
    fs = HostFs(tmp_path)
    assert gpu.check_hugepages(fs, None).status is Status.SKIP
    assert gpu.check_hugepages(fs, 4 * GIB).status is Status.PASS
    result = gpu.check_hugepages(fs, 8 * GIB)
    assert result.status is Status.FAIL and "needs 4096 free hugepages" in result.summary
    assert result.fix and result.fix.startswith("echo 4096 > /proc/sys/vm/nr_hugepages")
