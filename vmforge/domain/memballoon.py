"""The memory balloon: virtio normally, none with a passthrough GPU (it pins all guest memory)."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class Memballoon:
    model: str  # virtio | none

    def element(self, parent: Element) -> Element:
        return sub(parent, "memballoon", model=self.model)
