"""The network interface: a libvirt network, a host bridge, user-mode networking, or none."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class Interface:
    type: str  # network | bridge | user
    source: str
    model: str  # virtio | e1000e
    mac: str | None = None

    def element(self, parent: Element) -> Element:
        iface = sub(parent, "interface", type=self.type)
        if self.mac:
            sub(iface, "mac", address=self.mac.lower())
        if self.type == "network":
            sub(iface, "source", network=self.source)
        elif self.type == "bridge":
            sub(iface, "source", bridge=self.source)
        sub(iface, "model", type=self.model)
        return iface
