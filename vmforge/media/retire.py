"""After post-install: no copy of the answer media's secrets is left behind.

The answer media holds the VM's WinRM certificate key (PFX and its password) and the bootstrap
password (obfuscated in autounattend.xml).  Once the guest has imported the one and the host
rotates the other, every copy goes: the media volume in the pool and the image in the VM's
state folder (:func:`retire_answer_media`, on the host, after the drive was detached), and the
copies Setup keeps under ``C:\\Windows\\Panther`` (:func:`remove_answer_copies`, in the guest).
"""

from __future__ import annotations

from typing import Any

import libvirt
from lxml import etree

from vmforge.domain.media import STATE_KEY, volume_name
from vmforge.errors import VmforgeError
from vmforge.guest.clixml import first_error_line
from vmforge.guest.os_windows import render_script
from vmforge.guest.session import Guest
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import lookup_owned_domain
from vmforge.state import VmDir
from vmforge.storage import lookup_pool, lookup_volume

ROLE = "answer"


def _attached(dom: Any, name: str) -> bool:
    with libvirt_errors(f"reading domain {dom.name()}"):
        configs = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
        if dom.isActive():
            configs.append(dom.XMLDesc(0))
    for xml in configs:
        for source in etree.fromstring(xml.encode()).findall("devices/disk/source"):
            if source.get("volume") == name or str(source.get("file", "")).endswith(f"/{name}"):
                return True
    return False


def retire_answer_media(conn: Any, name: str, vm_dir: VmDir) -> list[str]:
    """Delete VM ``name``'s answer-media volume (when its owner tag lists it and no drive holds
    it) and the answer images in its state folder; returns what was deleted.  A re-run deletes
    nothing."""
    removed: list[str] = []
    found = lookup_owned_domain(conn, name)
    wanted = volume_name(name, ROLE)
    if found is not None:
        dom, tag = found
        for ref in tag.volumes:
            if ref.name != wanted:
                continue
            if _attached(dom, wanted):
                raise VmforgeError(
                    f"the answer media {ref.pool}/{wanted} is still in a drive of {name}",
                    hint="detach the installation media first (vmforge create does, in its detach-media step)",
                )
            pool = lookup_pool(conn, ref.pool)
            volume = lookup_volume(pool, ref.name) if pool is not None else None
            if volume is None:
                continue
            with libvirt_errors(f"deleting volume {ref.pool}/{ref.name}"):
                if str(volume.key()) != ref.key:
                    continue  # a different volume has that name now: not ours to delete
                volume.delete(0)
            removed.append(f"volume {ref.pool}/{ref.name}")
    for image in sorted(vm_dir.media.glob(f"{ROLE}*.iso")):
        image.unlink(missing_ok=True)
        removed.append(str(image))
    state = vm_dir.load()
    if state is not None and ROLE in state.extra.get(STATE_KEY, {}):
        del state.extra[STATE_KEY][ROLE]  # uploaded once; gone on purpose
        vm_dir.save(state)
    return removed


def remove_answer_copies(guest: Guest, *, timeout: float = 120.0) -> list[str]:
    """Delete the answer-file copies Windows Setup keeps; returns those that were still there.
    Raises when one cannot be deleted."""
    result = guest.run_script(render_script("remove-answer-copies"), timeout=timeout)
    if result.rc != 0:
        raise VmforgeError(
            f"removing the answer-file copies in the guest failed: {first_error_line(result.stderr)}",
            hint="delete C:\\Windows\\Panther\\unattend.xml in the guest yourself",
        )
    lines = [line.strip() for line in result.stdout.decode("utf-8", "replace").splitlines() if line.strip()]
    left = [line.removeprefix("left ") for line in lines if line.startswith("left ")]
    if left:
        raise VmforgeError(
            f"the guest could not delete {', '.join(left)} (it holds the bootstrap password, obfuscated)",
            hint="delete it in the guest as an administrator, then re-run",
        )
    return [line.removeprefix("removed ") for line in lines if line.startswith("removed ")]
