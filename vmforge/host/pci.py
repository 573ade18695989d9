"""PCI devices and IOMMU groups, read from sysfs (kernel ABI: Documentation/ABI/testing/sysfs-bus-pci).

Everything is read below an injectable ``root`` (``/`` on a real host, a fake tree in tests)::

    sys/bus/pci/devices/DDDD:BB:SS.F/{vendor,device,class,boot_vga,reset_method,rom}
    sys/bus/pci/devices/DDDD:BB:SS.F/driver -> ../../../bus/pci/drivers/NAME
    sys/bus/pci/devices/DDDD:BB:SS.F/iommu_group -> ../../../kernel/iommu_groups/N
    sys/kernel/iommu_groups/N/devices/DDDD:BB:SS.F

Used by the domain builder (GPU passthrough) and by ``doctor``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge.errors import SpecError, VmforgeError

_ADDRESS_RE = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_ID_RE = re.compile(r"^([0-9a-f]{4}):([0-9a-f]{4})$")

CLASS_DISPLAY = 0x03
CLASS_BRIDGE = 0x06


@dataclass(frozen=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        match = _ADDRESS_RE.match(text.lower())
        if not match:
            raise ValueError(f"{text!r} is not a PCI address like 0000:01:00.0")
        d, b, s, f = match.groups()
        return cls(int(d, 16), int(b, 16), int(s, 16), int(f, 16))

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def slot_key(self) -> tuple[int, int, int]:
        """Functions of one physical device share domain, bus and slot."""
        return (self.domain, self.bus, self.slot)


@dataclass(frozen=True)
class PciDevice:
    address: PciAddress
    vendor: int
    device: int
    class_code: int  # 24 bits: class, subclass, prog-if
    driver: str | None
    iommu_group: int | None
    boot_vga: bool | None  # None: the kernel offers no boot_vga file (not a VGA device)
    reset_methods: tuple[str, ...]
    has_rom: bool

    @property
    def base_class(self) -> int:
        return self.class_code >> 16

    @property
    def is_display(self) -> bool:
        return self.base_class == CLASS_DISPLAY

    @property
    def is_bridge(self) -> bool:
        return self.base_class == CLASS_BRIDGE

    @property
    def id(self) -> str:
        return f"{self.vendor:04x}:{self.device:04x}"

    def to_data(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "id": self.id,
            "class": f"0x{self.class_code:06x}",
            "driver": self.driver,
            "iommu_group": self.iommu_group,
            "boot_vga": self.boot_vga,
            "reset_methods": list(self.reset_methods),
            "has_rom": self.has_rom,
        }


class PciHost:
    """The PCI view of one host; ``root`` is ``/`` or a fake sysfs tree."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self.devices_dir = root / "sys" / "bus" / "pci" / "devices"
        self.groups_dir = root / "sys" / "kernel" / "iommu_groups"

    def iommu_enabled(self) -> bool:
        return self.groups_dir.is_dir() and any(self.groups_dir.iterdir())

    def devices(self) -> list[PciDevice]:
        if not self.devices_dir.is_dir():
            return []
        out = []
        for entry in sorted(self.devices_dir.iterdir(), key=lambda p: p.name):
            if _ADDRESS_RE.match(entry.name):
                out.append(self._read(entry))
        return out

    def device(self, address: PciAddress) -> PciDevice | None:
        path = self.devices_dir / str(address)
        return self._read(path) if path.exists() else None

    def group_members(self, group: int) -> list[PciDevice]:
        folder = self.groups_dir / str(group) / "devices"
        if not folder.is_dir():
            return []
        members = []
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            device = self.device(PciAddress.parse(entry.name))
            if device is not None:
                members.append(device)
        return members

    def display_devices(self) -> list[PciDevice]:
        return [d for d in self.devices() if d.is_display]

    def _read(self, path: Path) -> PciDevice:
        def text(name: str) -> str | None:
            try:
                return (path / name).read_text(encoding="ascii").strip()
            except OSError:
                return None

        def hexnum(name: str) -> int:
            value = text(name)
            return int(value, 16) if value else 0

        driver_link = path / "driver"
        group_link = path / "iommu_group"
        boot_vga = text("boot_vga")
        reset = text("reset_method")
        return PciDevice(
            address=PciAddress.parse(path.name),
            vendor=hexnum("vendor"),
            device=hexnum("device"),
            class_code=hexnum("class"),
            driver=driver_link.resolve().name if driver_link.is_symlink() else None,
            iommu_group=int(group_link.resolve().name) if group_link.is_symlink() else None,
            boot_vga=None if boot_vga is None else boot_vga == "1",
            reset_methods=tuple(reset.split()) if reset else (),
            has_rom=(path / "rom").exists(),
        )


def select_devices(host: PciHost, selector: str, origin: str = "gpu.devices") -> list[PciDevice]:
    """The devices a selector names: one PCI address, or every device with a ``vendor:device`` id."""
    wanted = selector.lower()
    if _ADDRESS_RE.match(wanted):
        device = host.device(PciAddress.parse(wanted))
        if device is None:
            raise SpecError(
                f"{origin}: PCI device {selector} does not exist on this host",
                hint="list the display devices with 'vmforge gpu list' (or lspci -D)",
            )
        return [device]
    if _ID_RE.match(wanted):
        matches = [d for d in host.devices() if d.id == wanted]
        if not matches:
            raise SpecError(
                f"{origin}: no PCI device with id {selector} on this host",
                hint="list the display devices with 'vmforge gpu list' (or lspci -nn)",
            )
        return matches
    raise SpecError(f"{origin}: {selector!r} is neither a PCI address nor a vendor:device id")


def passthrough_devices(host: PciHost, selectors: tuple[str, ...], allow_shared_group: bool = False) -> list[PciDevice]:
    """Every device to hand to the guest for ``selectors``: their whole IOMMU groups, bridges aside.

    A group holding devices that are not functions of a selected card (say a USB controller)
    is refused unless ``allow_shared_group``; then only the selected cards' functions go.
    """
    if not selectors:
        return []
    selected: list[PciDevice] = []
    for selector in selectors:
        selected.extend(select_devices(host, selector))
    if not any(d.is_display for d in selected):
        names = ", ".join(f"{d.address} (class 0x{d.class_code:06x})" for d in selected)
        raise SpecError(
            f"gpu.devices: {names} is not a display device",
            hint="name the GPU itself (class 0x03xxxx); its audio function is added automatically",
        )
    if not host.iommu_enabled():
        raise VmforgeError(
            "GPU passthrough needs the IOMMU, and this host has no IOMMU groups",
            hint="enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on) iommu=pt",
        )
    slots = {d.address.slot_key for d in selected}
    chosen: dict[PciAddress, PciDevice] = {}
    for device in selected:
        if device.iommu_group is None:
            raise VmforgeError(
                f"PCI device {device.address} belongs to no IOMMU group",
                hint="check that the IOMMU is enabled for this device's root port",
            )
        members = [m for m in host.group_members(device.iommu_group) if not m.is_bridge]
        strangers = [m for m in members if m.address.slot_key not in slots]
        if strangers and not allow_shared_group:
            listed = ", ".join(f"{m.address} ({m.id}, class 0x{m.class_code:06x})" for m in strangers)
            raise VmforgeError(
                f"IOMMU group {device.iommu_group} of {device.address} also holds {listed}",
                hint="move the card to another slot, pass those devices too (add them to gpu.devices), "
                "or set gpu.allow_shared_group = true to pass only the card's own functions",
            )
        for member in members:
            if member.address.slot_key in slots:
                chosen[member.address] = member
        chosen[device.address] = device
    return sorted(chosen.values(), key=lambda d: (d.address.domain, d.address.bus, d.address.slot, d.address.function))
