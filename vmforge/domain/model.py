"""The domain: typed devices in, stable XML out (one fixed element order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from vmforge.domain.channels import AgentChannel, SerialConsole
from vmforge.domain.cpu import Cpu
from vmforge.domain.disks import CdromDisk, VolumeDisk
from vmforge.domain.features import Clock, Features, PowerManagement
from vmforge.domain.firmware import OsBoot
from vmforge.domain.hostdev import PciHostdev
from vmforge.domain.memballoon import Memballoon
from vmforge.domain.network import Interface
from vmforge.domain.shmem import Shmem
from vmforge.domain.tpm import Tpm
from vmforge.domain.tuning import CpuTune, HugePages
from vmforge.domain.video import Video, VncGraphics
from vmforge.domain.xmlutil import Element, sub


class Device(Protocol):
    def element(self, parent: Element) -> Element: ...


@dataclass(frozen=True)
class Domain:
    name: str
    virt_type: str  # kvm | qemu
    memory_kib: int
    vcpus: int
    os: OsBoot
    features: Features
    cpu: Cpu
    clock: Clock
    pm: PowerManagement
    on_reboot: str  # restart | destroy
    uuid: str | None = None  # set when redefining an existing domain
    metadata: tuple[str, ...] = ()
    hugepages: HugePages | None = None
    cputune: CpuTune | None = None  # serialized elements in foreign namespaces (the owner tag)
    disks: tuple[VolumeDisk | CdromDisk, ...] = ()
    scsi_controller: bool = False
    interfaces: tuple[Interface, ...] = ()
    serial: SerialConsole | None = None
    agent: AgentChannel | None = None
    tpm: Tpm | None = None
    graphics: VncGraphics | None = None
    video: Video | None = None
    hostdevs: tuple[PciHostdev, ...] = ()
    memballoon: Memballoon = field(default_factory=lambda: Memballoon("virtio"))
    shmems: tuple[Shmem, ...] = ()

    def to_element(self) -> Element:
        root = etree.Element("domain", type=self.virt_type)
        sub(root, "name", self.name)
        if self.uuid:
            sub(root, "uuid", self.uuid)
        if self.metadata:
            metadata = sub(root, "metadata")
            for item in self.metadata:
                metadata.append(etree.fromstring(item.encode()))
        sub(root, "memory", str(self.memory_kib), unit="KiB")
        sub(root, "currentMemory", str(self.memory_kib), unit="KiB")
        if self.hugepages is not None:
            self.hugepages.element(root)
        sub(root, "vcpu", str(self.vcpus), placement="static")
        if self.cputune is not None:
            self.cputune.element(root)
        self.os.element(root)
        self.features.element(root)
        self.cpu.element(root)
        self.clock.element(root)
        sub(root, "on_poweroff", "destroy")
        sub(root, "on_reboot", self.on_reboot)
        sub(root, "on_crash", "destroy")
        self.pm.element(root)
        devices = sub(root, "devices")
        for disk in self.disks:
            disk.element(devices)
        sub(devices, "controller", type="usb", index=0, model="qemu-xhci")
        sub(devices, "controller", type="sata", index=0)
        if self.scsi_controller:
            sub(devices, "controller", type="scsi", index=0, model="virtio-scsi")
        sub(devices, "controller", type="virtio-serial", index=0)
        for interface in self.interfaces:
            interface.element(devices)
        if self.serial is not None:
            self.serial.element(devices)
            self.serial.console_element(devices)
        if self.agent is not None:
            self.agent.element(devices)
        sub(devices, "input", type="tablet", bus="usb")
        if self.tpm is not None:
            self.tpm.element(devices)
        if self.graphics is not None:
            self.graphics.element(devices)
        if self.video is not None:
            self.video.element(devices)
        for hostdev in self.hostdevs:
            hostdev.element(devices)
        self.memballoon.element(devices)
        for shmem in self.shmems:
            shmem.element(devices)
        return root

    def to_xml(self) -> str:
        etree.indent(element := self.to_element(), space="  ")
        return etree.tostring(element, encoding="unicode") + "\n"
