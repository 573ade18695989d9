"""Golden probe image -> two linked clones, on the real daemon with the real probe guest.

A golden probe VM (vmforge's own domain builder, direct kernel boot, BIOS + swtpm TPM) writes
known content to its disk and an identity file; ``capture_image`` generalizes it through the
agent (identity removed), waits for it to power off and stores disk + TPM state.  Each clone
must see the base content, get its own identity, and leave the base byte-identical.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from images_support import PREFIX, SYSTEM_URI, img_pool_dir, uefi_tpm_plan  # noqa: F401 - fixture
from probe_vm import probe_image  # noqa: F401 - fixture

from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.shapes import Shape
from vmforge.errors import UsageError
from vmforge.images.capture import capture_image
from vmforge.images.clone import agent_session, clone_vm
from vmforge.images.files import state_digest
from vmforge.images.generalize import PROBE_IDENTITY
from vmforge.images.probe_boot import probe_boot_plan
from vmforge.images.specialize import probe_identity, read_probe_file, write_probe_identity
from vmforge.images.store import find_image, list_images, prune_images, remove_image, tpm_copy
from vmforge.images.vmfiles import vm_files
from vmforge.probe.image import ProbeImage
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration

GOLDEN = PREFIX + "golden"
CLONES = (PREFIX + "c1", PREFIX + "c2")
CONTENT = "golden content written before capture\n"
READY = 420.0  # boot to agent under TCG on a busy shared 2-core host


def probe_vm_plan(conn: Any, pool_dir: Path, name: str, image: ProbeImage) -> Any:
    plan = uefi_tpm_plan(conn, pool_dir, name, vm={"firmware": "bios", "memory": "256MiB"}, disk={"size": "64MiB"})
    return probe_boot_plan(plan, image)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_capture_then_two_clones_see_base_content_with_own_identity(
    system_conn: Any,
    img_pool_dir: Path,  # noqa: F811
    probe_image: ProbeImage,  # noqa: F811
) -> None:
    golden_plan = probe_vm_plan(system_conn, img_pool_dir, GOLDEN, probe_image)
    dom = provision(system_conn, golden_plan, Shape.FINAL, vm_dir=VmDir(GOLDEN))
    with pytest.raises(UsageError, match="is shut off: vmforge generalizes"):
        capture_image(system_conn, GOLDEN, guest=agent_session(SYSTEM_URI, GOLDEN))
    start(dom)
    guest = agent_session(SYSTEM_URI, GOLDEN)()
    guest.transport.wait_ready(time.monotonic() + READY)
    assert guest.run_script(f"printf %s '{CONTENT}' > /mnt/disk/base.txt && sync", timeout=60).rc == 0
    write_probe_identity(guest, probe_identity(GOLDEN))
    assert read_probe_file(guest, PROBE_IDENTITY) is not None

    image = capture_image(system_conn, GOLDEN, label="probe-golden", guest=agent_session(SYSTEM_URI, GOLDEN))
    assert not dom.isActive() and image.generalized and image.tpm and image.os == "linux"
    base = Path(image.key)
    assert base.stat().st_mode & 0o777 == 0o444 and sha(base) == image.disk_sha256
    assert find_image("probe-golden") == image
    destroy_vm(system_conn, GOLDEN, VmDir(GOLDEN))  # the image does not need its source VM

    identities = []
    for name in CLONES:
        plan = probe_vm_plan(system_conn, img_pool_dir, name, probe_image)
        report = clone_vm(
            system_conn, image, plan, vm_dir=VmDir(name), guest=agent_session(SYSTEM_URI, name),
            reporter=Reporter(), ready_timeout=READY,
        )  # fmt: skip
        assert report.base_unchanged and report.identity
        clone_guest = agent_session(SYSTEM_URI, name)()
        assert read_probe_file(clone_guest, "/mnt/disk/base.txt") == CONTENT  # the base's content
        assert read_probe_file(clone_guest, PROBE_IDENTITY).startswith(f"name={name}\n")  # type: ignore[union-attr]
        identities.append(report.identity)
        clone_dom = system_conn.lookupByName(name)
        files = vm_files(clone_dom)
        assert files.tpm_dir is not None and files.tpm_dir.is_dir()  # its own copy of the TPM state
        assert files.tpm_dir != tpm_copy(image) and state_digest(files.tpm_dir) is not None
    assert len(set(identities)) == len(CLONES)
    assert sha(base) == image.disk_sha256  # never modified by either clone

    with pytest.raises(UsageError, match="is in use by volume"):
        remove_image(system_conn, image)
    removed, kept = prune_images(system_conn)
    assert removed == [] and len(kept) == 1
    for name in CLONES:
        system_conn.lookupByName(name).destroy()
        destroy_vm(system_conn, name, VmDir(name))
    assert sha(base) == image.disk_sha256
    removed, kept = prune_images(system_conn)
    assert kept == [] and any("probe-golden" in item for item in removed)
    assert not base.exists() and list_images() == []
    assert state_digest(base) is None


def image_dir_tpm(image: Any) -> Path:
    from vmforge.images.store import tpm_copy

    path = tpm_copy(image)
    assert path is not None
    return path
