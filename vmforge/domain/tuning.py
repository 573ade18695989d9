"""Performance tuning: vCPU pinning and huge-page memory backing."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class CpuTune:
    host_cpus: tuple[int, ...]  # host CPU of vCPU 0, 1, ...

    def element(self, parent: Element) -> Element:
        cputune = sub(parent, "cputune")
        for vcpu, host_cpu in enumerate(self.host_cpus):
            sub(cputune, "vcpupin", vcpu=vcpu, cpuset=host_cpu)
        return cputune


@dataclass(frozen=True)
class HugePages:
    def element(self, parent: Element) -> Element:
        backing = sub(parent, "memoryBacking")
        sub(backing, "hugepages")
        return backing
