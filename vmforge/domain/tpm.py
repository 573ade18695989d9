"""Emulated TPM 2.0 (swtpm); libvirt keeps its state in /var/lib/libvirt/swtpm/<uuid>."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class Tpm:
    model: str = "tpm-crb"

    def element(self, parent: Element) -> Element:
        tpm = sub(parent, "tpm", model=self.model)
        sub(tpm, "backend", type="emulator", version="2.0")
        return tpm
