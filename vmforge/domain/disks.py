"""Disks and CD-ROMs: the system disk and the installation media, all pool volumes."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class VolumeDisk:
    """The system disk, named by pool and volume so it works over remote URIs."""

    pool: str
    volume: str
    bus: str  # virtio | sata | scsi
    target: str  # vda, sda, ...
    boot_order: int | None
    format: str = "qcow2"

    def element(self, parent: Element) -> Element:
        disk = sub(parent, "disk", type="volume", device="disk")
        sub(disk, "driver", name="qemu", type=self.format, discard="unmap")
        sub(disk, "source", pool=self.pool, volume=self.volume)
        sub(disk, "target", dev=self.target, bus=self.bus)
        if self.boot_order is not None:
            sub(disk, "boot", order=self.boot_order)
        return disk


@dataclass(frozen=True)
class CdromDisk:
    """A read-only SATA CD-ROM holding a pool volume; ``volume`` None is an empty drive."""

    volume: tuple[str, str] | None  # (pool, volume)
    target: str  # sdX on the SATA controller
    boot_order: int | None
    role: str  # installer | answer | virtio-win: recorded as the disk's serial for detach

    def element(self, parent: Element) -> Element:
        disk = sub(parent, "disk", type="volume" if self.volume else "file", device="cdrom")
        sub(disk, "driver", name="qemu", type="raw")
        if self.volume is not None:
            sub(disk, "source", pool=self.volume[0], volume=self.volume[1])
        sub(disk, "target", dev=self.target, bus="sata")
        sub(disk, "readonly")
        sub(disk, "serial", self.role)
        if self.boot_order is not None:
            sub(disk, "boot", order=self.boot_order)
        return disk


def disk_target(bus: str, index: int) -> str:
    """vda/vdb on virtio, sda/sdb on SATA and SCSI (index counts per prefix)."""
    prefix = "vd" if bus == "virtio" else "sd"
    return prefix + chr(ord("a") + index)
