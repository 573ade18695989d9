"""A probe VM that keeps its disk: the probe transform's hardware, the VM's own identity.

Golden probe images and their clones boot the probe guest (direct kernel boot); the transform
puts ``vmforge.disk=vda`` on the kernel command line (virtio disks), so the probe formats a
blank disk once and mounts it on ``/mnt/disk``.  Hardware changes come from the ONE probe transform
(vmforge.probe.transform); name, state folder, disk volume and ivshmem stay the VM's own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vmforge.plan import Plan
from vmforge.probe.image import ProbeImage
from vmforge.probe.run import SYSTEM_STAGE_DIR, stage_image
from vmforge.probe.transform import probe_as_vm


def probe_boot_plan(plan: Plan, image: ProbeImage, stage_root: Path = SYSTEM_STAGE_DIR) -> Plan:
    booted = probe_as_vm(plan, stage_image(image, plan, stage_root))  # adds vmforge.disk=vda
    return dataclasses.replace(
        booted, notes=(*plan.notes, "probe guest: direct kernel boot, BIOS firmware, disk mounted on /mnt/disk")
    )
