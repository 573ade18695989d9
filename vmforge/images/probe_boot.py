"""A probe VM that keeps its disk: the probe transform's hardware, the VM's own identity.

Golden probe images and their clones boot the probe guest (direct kernel boot) with
``vmforge.disk=<disk>`` on the kernel command line, so the probe formats a blank disk once and
mounts it on ``/mnt/disk``.  Hardware changes come from the ONE probe transform
(vmforge.probe.transform); name, state folder, disk volume and ivshmem stay the VM's own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vmforge.domain.disks import disk_target
from vmforge.plan import DirectBoot, Plan
from vmforge.probe.image import ProbeImage
from vmforge.probe.run import SYSTEM_STAGE_DIR, stage_image
from vmforge.probe.transform import probe_plan


def probe_boot_plan(plan: Plan, image: ProbeImage, stage_root: Path = SYSTEM_STAGE_DIR) -> Plan:
    staged = stage_image(image, plan, stage_root)
    target = disk_target(plan.disk.bus, 0)
    boot = DirectBoot(staged.kernel, staged.initrd, image.cmdline_with(f"vmforge.disk={target}"))
    transformed = probe_plan(plan, boot)
    return dataclasses.replace(
        transformed,
        name=plan.name,
        vm_dir=plan.vm_dir,
        disk=plan.disk,
        ivshmem=plan.ivshmem,
        media=None,
        serial_log=plan.serial_log,
        notes=(*plan.notes, "probe guest: direct kernel boot, BIOS firmware, disk mounted on /mnt/disk"),
    )
