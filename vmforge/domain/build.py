"""From a plan to a :class:`~vmforge.domain.model.Domain`, in one of three shapes.

- ``install``: installer ISO on a SATA CD first in boot order, the system disk second, answer
  media and virtio-win attached; ``on_reboot = destroy`` so Setup's first reboot stops the VM
  and the host sees it (then the post-install shape is defined, as virt-install does).
- ``post-install``: boots the disk; answer media and virtio-win stay attached (the bootstrap
  script on the answer media installs the guest agent from virtio-win at first logon).
- ``final``: the installation media removed.
"""

from __future__ import annotations

from collections.abc import Mapping

from vmforge.domain.channels import AgentChannel, SerialConsole
from vmforge.domain.cpu import Cpu
from vmforge.domain.disks import CdromDisk, VolumeDisk, disk_target
from vmforge.domain.features import Clock, Features, PowerManagement
from vmforge.domain.firmware import DirectKernel, OsBoot, Uefi
from vmforge.domain.hostdev import PciHostdev
from vmforge.domain.memballoon import Memballoon
from vmforge.domain.model import Domain
from vmforge.domain.network import Interface
from vmforge.domain.shapes import Shape, media_roles
from vmforge.domain.shmem import Shmem
from vmforge.domain.tpm import Tpm
from vmforge.domain.tuning import CpuTune, HugePages
from vmforge.domain.video import Video, VncGraphics
from vmforge.errors import VmforgeError
from vmforge.ownership import OwnerTag, VolumeRef
from vmforge.plan import LEGACY_FAMILIES, Plan
from vmforge.spec import Firmware, IvshmemModel, NetworkType, OsKind, VirtType


def build_domain(
    plan: Plan,
    shape: Shape,
    owner: OwnerTag | None = None,
    uuid: str | None = None,
    media: Mapping[str, VolumeRef] | None = None,
) -> Domain:
    """The domain for ``plan`` in ``shape``; ``owner`` goes into ``<metadata>``; ``uuid`` keeps
    an existing domain's identity when it is redefined; ``media`` maps roles (installer, answer,
    virtio-win) to the volumes holding them (a role without one is an empty drive)."""
    if not plan.host_resolved:
        raise VmforgeError(
            "the plan was resolved without the libvirt host's capabilities",
            hint="resolve it with host facts (vmforge.domain.review.plan_on_host)",
        )
    windows = plan.os is OsKind.WINDOWS
    # Hyper-V enlightenments need KVM: under TCG QEMU refuses to start ("kernel doesn't allow
    # setting HyperV VP_INDEX"), so a TCG guest gets none, and no Hyper-V clock.
    enlightened = windows and plan.virt_type is VirtType.KVM
    uefi = None
    if plan.firmware is not Firmware.BIOS:
        assert plan.uefi is not None  # resolved with host facts
        uefi = Uefi(plan.uefi.loader, plan.uefi.secure, plan.uefi.nvram_template)
    disks, scsi = _disks(plan, shape, media or {})
    gpu = plan.gpu
    hide = bool(gpu and gpu.hide_hypervisor)
    return Domain(
        name=plan.name,
        uuid=uuid,
        virt_type=plan.virt_type.value,
        memory_kib=plan.memory // 1024,
        vcpus=plan.vcpus,
        os=OsBoot(machine=plan.machine, uefi=uefi, direct=_direct(plan, disks)),
        features=Features(hyperv=enlightened, hide_hypervisor=hide, smm=bool(uefi and uefi.secure)),
        cpu=Cpu(plan.cpu_mode, plan.vcpus),
        clock=Clock(windows=windows, hyperv=enlightened),
        pm=PowerManagement(suspend_to_disk=plan.hibernate),
        hugepages=HugePages() if plan.hugepages else None,
        cputune=CpuTune(plan.cpu_pinning) if plan.cpu_pinning else None,
        on_reboot="destroy" if shape is Shape.INSTALL else "restart",
        metadata=(owner.to_xml(),) if owner else (),
        disks=disks,
        scsi_controller=scsi,
        interfaces=_interfaces(plan),
        serial=SerialConsole(str(plan.serial_log) if plan.serial_log else None),
        agent=AgentChannel(),
        tpm=Tpm() if plan.tpm else None,
        graphics=VncGraphics(plan.vnc_listen) if plan.vnc_listen else None,
        video=Video(plan.display_width, plan.display_height, plan.display_heads),
        hostdevs=_hostdevs(plan),
        memballoon=Memballoon("none" if gpu and gpu.functions else "virtio"),
        shmems=_shmems(plan),
    )


def _direct(plan: Plan, disks: tuple[VolumeDisk | CdromDisk, ...]) -> DirectKernel | None:
    """The directly booted kernel (the probe); its command line also says how many CD drives
    and how many SATA devices in all the domain has (``vmforge.cds=N vmforge.sata=M``), so the
    probe's init waits for exactly those drives instead of for the block devices to settle, and
    skips the AHCI driver (whose port probing takes ~0.4 s under TCG) when nothing is on SATA."""
    boot = plan.direct_boot
    if boot is None:
        return None
    cds = sum(isinstance(disk, CdromDisk) for disk in disks)
    sata = cds + sum(isinstance(disk, VolumeDisk) and disk.bus == "sata" for disk in disks)
    return DirectKernel(str(boot.kernel), str(boot.initrd), f"{boot.cmdline} vmforge.cds={cds} vmforge.sata={sata}")


def _disks(plan: Plan, shape: Shape, media: Mapping[str, VolumeRef]) -> tuple[tuple[VolumeDisk | CdromDisk, ...], bool]:
    bus = plan.disk.bus
    install = shape is Shape.INSTALL
    roles = media_roles(shape) if plan.media is not None else ()
    with_media = bool(roles)
    # sdX names are shared by SATA and SCSI disks: the CD-ROMs follow a sda system disk.
    sata_index = 1 if bus in ("sata", "scsi") else 0
    disk = VolumeDisk(
        pool=plan.disk.pool,
        volume=plan.disk.volume,
        bus=bus,
        target=disk_target(bus, 0),
        boot_order=2 if install and with_media else 1,
        format=plan.disk.format,
    )
    cds: list[CdromDisk] = []
    for role in roles:
        ref = media.get(role)
        cds.append(
            CdromDisk(
                volume=(ref.pool, ref.name) if ref else None,
                target=disk_target("sata", sata_index),
                boot_order=1 if role == "installer" else None,
                role=role,
            )
        )
        sata_index += 1
    ordered: list[VolumeDisk | CdromDisk] = [*cds[:1], disk, *cds[1:]] if install else [disk, *cds]
    return tuple(ordered), bus == "scsi"


def _hostdevs(plan: Plan) -> tuple[PciHostdev, ...]:
    gpu = plan.gpu
    if gpu is None:
        return ()
    if gpu.devices_named and not gpu.functions:
        raise VmforgeError(
            "gpu.devices are named but were not resolved against this host's PCI devices",
            hint="GPU passthrough needs vmforge to run on the VM's host (sysfs is read locally)",
        )
    return tuple(
        PciHostdev(address, str(gpu.rom) if gpu.rom and address == gpu.rom_function else None)
        for address in gpu.functions
    )


def _interfaces(plan: Plan) -> tuple[Interface, ...]:
    if plan.network is NetworkType.NONE:
        return ()
    model = "e1000e" if plan.family in LEGACY_FAMILIES else "virtio"
    return (Interface(plan.network.value, plan.network_source, model, plan.mac),)


def _shmems(plan: Plan) -> tuple[Shmem, ...]:
    ivshmem = plan.ivshmem
    if ivshmem is None:
        return ()
    doorbell = ivshmem.model is IvshmemModel.DOORBELL
    return (
        Shmem(
            name=ivshmem.name,
            size=ivshmem.size,
            doorbell=doorbell,
            server_socket=str(ivshmem.socket) if doorbell and ivshmem.socket else None,
        ),
    )
