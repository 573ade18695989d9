"""Fake sysfs trees laid out like the kernel's (Documentation/ABI/testing/sysfs-bus-pci).

Devices live under sys/devices/pci0000:00/ADDR; sys/bus/pci/devices/ADDR links there, as on a
real host; ``driver`` and ``iommu_group`` are symlinks; groups list their members as links.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FakeDevice:
    address: str
    vendor: int
    device: int
    class_code: int
    driver: str | None = None
    group: int | None = None
    boot_vga: bool | None = None
    reset_method: str | None = None
    rom: bool = False


def build(root: Path, devices: list[FakeDevice], iommu: bool = True) -> Path:
    bus = root / "sys" / "bus" / "pci" / "devices"
    bus.mkdir(parents=True)
    drivers = root / "sys" / "bus" / "pci" / "drivers"
    groups = root / "sys" / "kernel" / "iommu_groups"
    if iommu:
        groups.mkdir(parents=True)
    for dev in devices:
        real = root / "sys" / "devices" / "pci0000:00" / dev.address
        real.mkdir(parents=True)
        (real / "vendor").write_text(f"0x{dev.vendor:04x}\n")
        (real / "device").write_text(f"0x{dev.device:04x}\n")
        (real / "class").write_text(f"0x{dev.class_code:06x}\n")
        if dev.boot_vga is not None:
            (real / "boot_vga").write_text("1\n" if dev.boot_vga else "0\n")
        if dev.reset_method is not None:
            (real / "reset_method").write_text(dev.reset_method + "\n")
        if dev.rom:
            (real / "rom").write_bytes(b"")
        if dev.driver:
            (drivers / dev.driver).mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(drivers / dev.driver, real), real / "driver")
        if iommu and dev.group is not None:
            members = groups / str(dev.group) / "devices"
            members.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(real, members), members / dev.address)
            os.symlink(os.path.relpath(groups / str(dev.group), real), real / "iommu_group")
        os.symlink(os.path.relpath(real, bus), bus / dev.address)
    return root


ROOT_PORT = 0x060400
VGA = 0x030000
HDA = 0x040300
XHCI = 0x0C0330
HOST_BRIDGE = 0x060000


def two_gpu_workstation(root: Path) -> Path:
    """Intel iGPU drives the host console; an NVIDIA card (GPU + audio) sits behind root port 00:01.0."""
    return build(
        root,
        [
            FakeDevice("0000:00:00.0", 0x8086, 0x3E30, HOST_BRIDGE, None, 0),
            FakeDevice("0000:00:01.0", 0x8086, 0x1901, ROOT_PORT, "pcieport", 1),
            FakeDevice("0000:00:02.0", 0x8086, 0x3E92, VGA, "i915", 2, boot_vga=True, reset_method="flr bus", rom=True),
            FakeDevice(
                "0000:01:00.0", 0x10DE, 0x2204, VGA, "vfio-pci", 1, boot_vga=False, reset_method="bus", rom=True
            ),
            FakeDevice("0000:01:00.1", 0x10DE, 0x1AEF, HDA, "vfio-pci", 1, reset_method="bus"),
        ],
    )


def single_gpu_desktop(root: Path) -> Path:
    """One AMD card that also shows the host's boot console (boot_vga=1), driven by amdgpu."""
    return build(
        root,
        [
            FakeDevice("0000:00:00.0", 0x1022, 0x1480, HOST_BRIDGE, None, 0),
            FakeDevice("0000:00:03.1", 0x1022, 0x1483, ROOT_PORT, "pcieport", 5),
            FakeDevice("0000:03:00.0", 0x1002, 0x73BF, VGA, "amdgpu", 20, boot_vga=True, reset_method="bus", rom=True),
            FakeDevice("0000:03:00.1", 0x1002, 0xAB28, HDA, "snd_hda_intel", 20, reset_method="bus"),
        ],
    )


def gpu_shares_group_with_usb(root: Path) -> Path:
    """No ACS below the chipset: the GPU, its audio and a USB controller share group 12."""
    return build(
        root,
        [
            FakeDevice("0000:00:1c.0", 0x8086, 0xA110, ROOT_PORT, "pcieport", 12),
            FakeDevice("0000:01:00.0", 0x10DE, 0x1C82, VGA, "nouveau", 12, boot_vga=False, reset_method="bus"),
            FakeDevice("0000:01:00.1", 0x10DE, 0x0FB9, HDA, "snd_hda_intel", 12),
            FakeDevice("0000:02:00.0", 0x1B21, 0x1242, XHCI, "xhci_hcd", 12, reset_method="flr"),
        ],
    )


def iommu_off(root: Path) -> Path:
    """The same workstation booted without intel_iommu=on: no groups at all."""
    return build(
        root,
        [
            FakeDevice("0000:00:02.0", 0x8086, 0x3E92, VGA, "i915", None, boot_vga=True),
            FakeDevice("0000:01:00.0", 0x10DE, 0x2204, VGA, "nvidia", None, boot_vga=False),
            FakeDevice("0000:01:00.1", 0x10DE, 0x1AEF, HDA, "snd_hda_intel", None),
        ],
        iommu=False,
    )
