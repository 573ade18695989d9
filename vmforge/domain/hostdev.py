"""PCI passthrough: one managed ``<hostdev>`` per function (libvirt binds vfio-pci itself)."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class PciHostdev:
    address: str  # DDDD:BB:SS.F
    rom_file: str | None = None

    def element(self, parent: Element) -> Element:
        domain, bus, slot_function = self.address.split(":")
        slot, function = slot_function.split(".")
        hostdev = sub(parent, "hostdev", mode="subsystem", type="pci", managed="yes")
        source = sub(hostdev, "source")
        sub(source, "address", domain=f"0x{domain}", bus=f"0x{bus}", slot=f"0x{slot}", function=f"0x{function}")
        if self.rom_file is not None:
            sub(hostdev, "rom", bar="on", file=self.rom_file)
        return hostdev
