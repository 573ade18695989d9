"""The virtual CPU: mode (host-passthrough, maximum, host-model or a named model) and topology."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub

MODES = ("host-passthrough", "host-model", "maximum")


@dataclass(frozen=True)
class Cpu:
    mode: str  # one of MODES, or a QEMU model name
    vcpus: int

    def element(self, parent: Element) -> Element:
        if self.mode in MODES:
            cpu = sub(
                parent, "cpu", mode=self.mode, check="none", migratable="on" if self.mode != "host-model" else None
            )
        else:
            cpu = sub(parent, "cpu", mode="custom", match="exact", check="none")
            sub(cpu, "model", self.mode, fallback="forbid")
        sub(cpu, "topology", sockets=1, dies=1, cores=self.vcpus, threads=1)
        return cpu
