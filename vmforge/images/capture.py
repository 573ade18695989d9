"""``vmforge image capture NAME``: a shut-off (or generalized-then-stopped) VM's disk, NVRAM and
TPM state become a read-only base image in the store.

The disk is copied by libvirt (``createXMLFrom``: the whole backing chain flattened into one
standalone qcow2 in the same pool), so the VM is left as it was; NVRAM and TPM state are copied
on the host with owners and modes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from vmforge.domain.lifecycle import wait_for_stop
from vmforge.errors import UsageError, VmforgeError
from vmforge.guest.session import Guest
from vmforge.images.files import copy_state, file_digest, remove_state
from vmforge.images.generalize import generalize
from vmforge.images.store import Image, find_image, image_dir, list_images, save_image, volume_name
from vmforge.images.vmfiles import owned_domain, require_local, vm_files
from vmforge.libvirt_conn import libvirt_errors
from vmforge.state import utc_now
from vmforge.storage import lookup_pool, lookup_volume, pool_path, volume_xml

STOP_TIMEOUT = 900.0


def capture_image(
    conn: Any,
    name: str,
    *,
    label: str | None = None,
    image_id: str | None = None,
    inputs: dict[str, Any] | None = None,
    guest: Callable[[], Guest] | None = None,
    stop_timeout: float = STOP_TIMEOUT,
    clock: Callable[[], datetime] = utc_now,
    root: Path | None = None,
) -> Image:
    """Capture VM ``name``.  With ``guest`` (a factory for its agent session) a running VM is
    generalized first and waited for until it powers off; without, it must be shut off already
    (and is recorded as not generalized).  ``image_id`` names the image (the build's input
    hash); None names it by the captured disk's sha256."""
    require_local(conn)
    dom, _tag = owned_domain(conn, name)
    os_family, generalized = _generalize_and_stop(dom, name, guest, stop_timeout)
    if image_id is not None:
        existing = [image for image in list_images(root) if image.id == image_id]
        if existing:
            return existing[0]
    files = vm_files(dom)
    pool = lookup_pool(conn, files.disk_pool)
    source = lookup_volume(pool, files.disk_volume) if pool is not None else None
    if pool is None or source is None:
        raise VmforgeError(f"the disk volume of VM '{name}' is missing", hint=f"'vmforge destroy {name}'")
    staging_name = f"vmforge-image-capture-{os.getpid()}.qcow2"
    with libvirt_errors(f"reading volume {files.disk_volume}"):
        capacity = int(source.info()[1])
    with libvirt_errors(f"copying the disk of {name} into the image store"):
        staged = pool.createXMLFrom(volume_xml(staging_name, capacity, "qcow2"), source, 0)
    staged_path = Path(str(staged.key()))
    try:
        disk_sha = file_digest(staged_path)
        image_id = image_id or disk_sha
        target = pool_path(pool) / volume_name(image_id)
        if lookup_volume(pool, volume_name(image_id)) is not None:
            with contextlib.suppress(Exception):
                return find_image(image_id, root)  # the same content captured before
            raise VmforgeError(f"{target} exists but the store does not know it", hint=f"remove {target} by hand")
        staged_path.rename(target)
    finally:
        if staged_path.exists():
            with libvirt_errors(f"removing {staging_name}"):
                staged.delete(0)
        with libvirt_errors(f"refreshing pool {files.disk_pool}"):
            pool.refresh(0)
    target.chmod(0o444)
    folder = image_dir(image_id, root)
    remove_state(folder)
    if files.nvram is not None and files.nvram.exists():
        copy_state(files.nvram, folder / "nvram.fd")
    if files.tpm_dir is not None and files.tpm_dir.exists():
        copy_state(files.tpm_dir, folder / "tpm")
    image = Image(
        id=image_id,
        label=label or name,
        created=clock().isoformat(timespec="seconds"),
        os=os_family,
        pool=files.disk_pool,
        volume=volume_name(image_id),
        key=str(target),
        disk_sha256=disk_sha,
        size=capacity,
        source_vm=name,
        generalized=generalized,
        nvram=(folder / "nvram.fd").exists(),
        tpm=(folder / "tpm").exists(),
        inputs=inputs or {},
    )
    save_image(image, root)
    return image


def _generalize_and_stop(
    dom: Any, name: str, guest: Callable[[], Guest] | None, stop_timeout: float
) -> tuple[str, bool]:
    with libvirt_errors(f"reading the state of {name}"):
        running = bool(dom.isActive())
    if running:
        if guest is None:
            raise VmforgeError(
                f"VM '{name}' is running: capture needs it shut off, or generalized by vmforge",
                hint="run 'vmforge image capture' without --no-generalize to generalize and stop it, "
                "or shut it down yourself",
            )
        os_family = generalize(guest())
        wait_for_stop(dom, stop_timeout)
        return os_family, True
    if guest is not None:
        raise UsageError(
            f"VM '{name}' is shut off: vmforge generalizes through the guest agent of a running VM",
            hint="start it (virsh start NAME) and run capture again, or pass --no-generalize to capture it as it is",
        )
    return "unknown", False
