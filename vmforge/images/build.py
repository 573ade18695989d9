"""``vmforge image build``: create (the create pipeline) + generalize + capture, cached by the
input hash (vmforge.images.inputs).  Equal inputs find the stored image: nothing boots.

Probe variant (``os = "probe"``): after create, the build formats the probe's disk in the guest
(busybox mke2fs, only when blank), writes known content and a per-VM identity file; capture
then generalizes by deleting the identity file and the build VM is destroyed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge.create.pipeline import Create, CreateOptions
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.disks import disk_target
from vmforge.domain.review import plan_on_host
from vmforge.errors import VmforgeError
from vmforge.images.capture import capture_image
from vmforge.images.clone import agent_session, check_base
from vmforge.images.inputs import ImageInputs, input_hash, spec_inputs, windows_inputs
from vmforge.images.specialize import probe_identity, write_probe_identity
from vmforge.images.store import Image, list_images
from vmforge.spec import OsKind, Spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

GOLDEN_FILE = "/mnt/disk/vmforge/golden.txt"


def probe_content_script(device: str) -> str:
    """Mount the probe's disk on /mnt/disk (formatting it only when blank) and write known content."""
    return (
        "set -e; mkdir -p /mnt/disk; "
        f"if ! grep -q ' /mnt/disk ' /proc/mounts; then mount /dev/{device} /mnt/disk 2>/dev/null "
        f"|| {{ mke2fs -q -i 262144 /dev/{device} && mount /dev/{device} /mnt/disk; }}; fi; "
        f"mkdir -p /mnt/disk/vmforge; echo 'vmforge golden probe image' > {GOLDEN_FILE}; sync"
    )


@dataclass
class BuildResult:
    image: Image
    cache_hit: bool
    seconds: float
    boots: int

    def to_data(self) -> dict[str, Any]:
        return {
            "image": self.image.to_data(),
            "cache_hit": self.cache_hit,
            "seconds": self.seconds,
            "boots": self.boots,
        }


def build_inputs(conn: Any, spec: Spec) -> ImageInputs:
    if spec.os is OsKind.WINDOWS:
        return windows_inputs(spec)
    plan = plan_on_host(conn, spec)
    return spec_inputs(spec, plan, iso_sha256=None, answer_file=probe_content_script(disk_target(plan.disk.bus, 0)))


def build_image(
    conn: Any,
    spec: Spec,
    *,
    reporter: Reporter,
    root: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BuildResult:
    started = clock()
    with reporter.step("hashing the image inputs"):
        inputs = build_inputs(conn, spec)
        image_id = input_hash(inputs)
    found = [image for image in list_images(root) if image.id == image_id]
    if found:
        check_base(found[0])
        reporter.info(f"image {image_id[:16]} is up to date: nothing to build")
        return BuildResult(found[0], True, round(clock() - started, 2), 0)
    name = spec.vm.name
    Create(spec, conn, reporter=reporter).run(CreateOptions())
    guest = agent_session(spec.vm.connect, name)
    if spec.os is OsKind.PROBE:
        with reporter.step("writing the golden content in the probe"):
            session = guest()
            result = session.run_script(str(inputs.answer_file), timeout=120)
            if result.rc != 0:
                raise VmforgeError(
                    f"writing the golden content failed (exit {result.rc}): {result.stderr.decode(errors='replace')}",
                    hint="look at the probe's serial log in the VM's state folder",
                )
            write_probe_identity(session, probe_identity(name))
    with reporter.step(f"generalizing {name} and capturing it as image {image_id[:16]}"):
        image = capture_image(conn, name, label=name, image_id=image_id, inputs=inputs.to_data(), guest=guest)
    with reporter.step(f"removing the build VM {name}"):
        destroy_vm(conn, name, VmDir(name))
    return BuildResult(image, False, round(clock() - started, 2), 1)
