"""The ONE transform from a spec's plan to the probe's plan.

The probe boots a small Linux guest (vmforge/probe/image.py) on the hardware the spec's plan
produces, so what the guest reports is what the real VM would get.  Only what cannot carry a
Linux kernel, or would collide with the real VM, changes:

- ``name`` gets the ``-probe`` suffix (its own domain, disk volume, state folder and ivshmem
  backing file), so probing never touches the real VM;
- ``direct_boot``: QEMU loads the probe kernel and initramfs itself (``<kernel>``, ``<initrd>``,
  ``<cmdline>``); no disk or CD is booted.  With ``os = "probe"`` and a virtio disk the command
  line names it (``vmforge.disk=vda``): the probe formats it when blank and mounts it on
  /mnt/disk, so disk-based flows have real data to check;
- ``firmware``: BIOS (SeaBIOS), so no UEFI loader, NVRAM or secure boot (``smm`` follows);
- ``cpu_mode``: ``qemu64,+rdrand`` when ``virt_type = "qemu"`` (TCG), a model every TCG build
  runs the Debian kernel on, with RDRAND (TCG emulates it from the host's random source) so the
  kernel's random pool is seeded at boot: without it the first read of /dev/urandom (mke2fs's
  UUID) waited ~1 s for jitter entropy; under KVM the spec's CPU is kept;
- ``media``: the answer media CD (and virtio-win when the spec gives it) stay; the Windows
  installer ISO is not attached (the probe does not boot it and it is gigabytes to upload).

Everything else is kept as the spec makes it: memory, vCPUs, the disk (bus, format, size), TPM,
the agent channel, ivshmem (model and size), network, display, GPU hostdevs, tuning.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vmforge.plan import DirectBoot, MediaPlan, Plan
from vmforge.spec import Firmware, OsKind, VirtType

SUFFIX = "-probe"
TCG_CPU = "qemu64,+rdrand"
MAX_NAME = 63


def probe_name(name: str, suffix: str = SUFFIX) -> str:
    """The probe domain's name for VM ``name`` (still a valid VM name)."""
    return name[: MAX_NAME - len(suffix)] + suffix


def probe_plan(plan: Plan, boot: DirectBoot, answer_iso: Path | None = None, *, suffix: str = SUFFIX) -> Plan:
    """``plan`` as the probe boots it (see the module doc for every change); ``suffix`` names
    the probe's own objects (``-probe``; the doctor's boot test uses ``-boot-test``)."""
    name = probe_name(plan.name, suffix)
    vm_dir = plan.vm_dir.parent / name
    ivshmem = plan.ivshmem
    if ivshmem is not None:
        shm = f"vmforge-{name}"
        socket = ivshmem.socket.with_name(f"{shm}.sock") if ivshmem.socket is not None else None
        ivshmem = dataclasses.replace(ivshmem, name=shm, path=ivshmem.path.with_name(shm), socket=socket)
    virtio_win = plan.media.virtio_win_iso if plan.media is not None else None
    answer = answer_iso if answer_iso is not None else (plan.media.answer_iso if plan.media is not None else None)
    media = (
        MediaPlan(installer_iso=None, virtio_win_iso=virtio_win, answer_iso=answer) if answer or virtio_win else None
    )
    if plan.os is OsKind.PROBE and plan.disk.bus == "virtio":
        boot = dataclasses.replace(boot, cmdline=f"{boot.cmdline} vmforge.disk=vda")
    return dataclasses.replace(
        plan,
        name=name,
        vm_dir=vm_dir,
        direct_boot=boot,
        firmware=Firmware.BIOS,
        uefi=None,
        cpu_mode=TCG_CPU if plan.virt_type is VirtType.QEMU else plan.cpu_mode,
        disk=dataclasses.replace(plan.disk, volume=f"{name}.{plan.disk.format}"),
        ivshmem=ivshmem,
        media=media,
        serial_log=vm_dir / "logs" / "serial0.log" if plan.serial_log is not None else None,
        notes=(*plan.notes, "probe: direct kernel boot, BIOS firmware"),
    )


def probe_as_vm(plan: Plan, boot: DirectBoot, answer_iso: Path | None = None) -> Plan:
    """The probe transform for a VM that IS the probe guest (``os = "probe"`` creates, golden
    images, clones): the probe's hardware changes, but the VM keeps its own name, state folder,
    disk volume, ivshmem file and serial log.  Media only when ``answer_iso`` is given."""
    transformed = probe_plan(plan, boot, answer_iso)
    return dataclasses.replace(
        transformed,
        name=plan.name,
        vm_dir=plan.vm_dir,
        disk=plan.disk,
        ivshmem=plan.ivshmem,
        serial_log=plan.serial_log,
        media=transformed.media if answer_iso is not None else None,
    )
