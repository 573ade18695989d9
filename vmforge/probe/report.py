"""What the probe guest reports: parsed from ``vmforge-probe-report``'s lines, plus host checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmforge.errors import VmforgeError

IVSHMEM_ID = "1af4:1110"  # Red Hat, Inc. Inter-VM shared memory


@dataclass(frozen=True)
class PciDevice:
    address: str
    ids: str  # vendor:device, lower-case hex
    pci_class: str


@dataclass
class GuestFacts:
    pci: list[PciDevice] = field(default_factory=list)
    memory_kib: int = 0
    cpus: int = 0
    cds: dict[str, str] = field(default_factory=dict)  # device -> volume label ('-' when none)
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # device -> {path: size}
    disks: dict[str, int] = field(default_factory=dict)  # device -> bytes

    def device(self, ids: str) -> PciDevice | None:
        return next((d for d in self.pci if d.ids == ids), None)

    def to_data(self) -> dict[str, Any]:
        return {
            "pci": [{"address": d.address, "id": d.ids, "class": d.pci_class} for d in self.pci],
            "memory_kib": self.memory_kib,
            "cpus": self.cpus,
            "cds": {dev: {"label": label, "files": self.files.get(dev, {})} for dev, label in self.cds.items()},
            "disks": self.disks,
        }


def parse_report(text: str) -> GuestFacts:
    """The lines ``templates/probe/vmforge-probe-report`` prints; an unknown line is an error."""
    facts = GuestFacts()
    for number, line in enumerate(text.splitlines(), start=1):
        kind, _, rest = line.partition(" ")
        parts = rest.split(" ")
        try:
            if kind == "pci":
                facts.pci.append(PciDevice(parts[0], parts[1].lower(), parts[2].lower()))
            elif kind == "memory_kib":
                facts.memory_kib = int(parts[0])
            elif kind == "cpus":
                facts.cpus = int(parts[0])
            elif kind == "cd":
                facts.cds[parts[0]] = rest.split(" ", 1)[1]
            elif kind == "file":
                dev, size, path = rest.split(" ", 2)
                facts.files.setdefault(dev, {})[path] = int(size)
            elif kind == "disk":
                facts.disks[parts[0]] = int(parts[1])
            elif line.strip():
                raise IndexError(kind)  # noqa: TRY301 - one error path for every bad line
        except (IndexError, ValueError):
            raise VmforgeError(
                f"the probe guest's report has an unreadable line {number}: {line[:120]!r}",
                hint="the probe image and this vmforge disagree; rebuild the image (delete the probe cache)",
            ) from None
    return facts


@dataclass
class ProbeReport:
    name: str  # the probe domain's name
    plan_name: str  # the VM the probe stood in for
    boot_to_agent_s: float
    phases: list[dict[str, Any]]
    guest: GuestFacts
    ivshmem: dict[str, Any] | None = None
    removed: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_data(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "name": self.name,
            "vm": self.plan_name,
            "boot_to_agent_s": round(self.boot_to_agent_s, 2),
            "phases": self.phases,
            "guest": self.guest.to_data(),
            "ivshmem": self.ivshmem,
            "removed": self.removed,
            "problems": self.problems,
        }

    def lines(self) -> list[str]:
        """The human-readable report (stdout of ``vmforge probe``)."""
        guest = self.guest
        out = [
            f"probe {self.name} (hardware of {self.plan_name}): {'OK' if self.ok else 'PROBLEMS'}",
            f"  boot to agent: {self.boot_to_agent_s:.1f}s",
            f"  phases: {' '.join(p['phase'] for p in self.phases)}",
            f"  memory: {guest.memory_kib // 1024} MiB, cpus: {guest.cpus}",
            f"  pci: {' '.join(d.ids for d in guest.pci)}",
        ]
        for dev, size in guest.disks.items():
            out.append(f"  disk {dev}: {size} bytes")
        for dev, label in guest.cds.items():
            files = guest.files.get(dev, {})
            out.append(f"  cd {dev} ({label}): {len(files)} files")
            out += [f"    {path} ({size} bytes)" for path, size in sorted(files.items())]
        if self.ivshmem is not None:
            echo, frame = self.ivshmem["echo"], self.ivshmem["frame"]
            bar = self.ivshmem.get("bar_size")
            device = self.ivshmem["device"]
            out.append(f"  ivshmem {device} (BAR2 {bar} bytes): echo {echo['messages']} ok={echo['ok']}")
            out.append(f"    frame {self.ivshmem['resolution']}: {frame['bytes']} bytes, crc_ok={frame['crc_ok']}")
        out += [f"  problem: {p}" for p in self.problems]
        out.append(f"  probe domain removed: {'yes' if self.removed else 'no (--keep)'}")
        return out
