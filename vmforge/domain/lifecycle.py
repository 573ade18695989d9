"""Defining, starting and re-shaping vmforge's domains on a libvirt connection."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import libvirt
from lxml import etree

from vmforge.domain.build import build_domain
from vmforge.domain.media import check_sources, media_refs, media_sources, upload_media
from vmforge.domain.owner import owner_tag
from vmforge.domain.shapes import MEDIA_ROLES, Shape
from vmforge.errors import VmforgeError
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import Plan
from vmforge.state import VmDir, utc_now
from vmforge.storage import check_volume_free, create_overlay, create_volume, ensure_pool, pool_path, volume_ref


def define_xml(conn: Any, xml: str) -> Any:
    """Define with libvirt's own schema validation on."""
    root = etree.fromstring(xml.encode())
    with libvirt_errors(f"defining domain {root.findtext('name')}"):
        return conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)


def provision(
    conn: Any,
    plan: Plan,
    shape: Shape,
    clock: Callable[[], datetime] = utc_now,
    vm_dir: VmDir | None = None,
    *,
    disk_base: Any | None = None,
) -> Any:
    """Pool, owner-tagged domain, then volumes (disk, uploaded media): each made only when
    missing, so a re-run converges.

    Everything that could be foreign or broken is checked before anything is defined.  The
    domain is defined before its volumes so each is listed in an owner tag from the moment it
    exists; defining the same plan twice leaves the domain unchanged.  The final shape uploads
    no media (volumes uploaded earlier stay listed until ``destroy``).  ``disk_base`` (a base
    image volume in the same pool): the disk is made as a qcow2 overlay on it (a linked clone).
    """
    vm_dir = vm_dir or VmDir(plan.name, root=plan.vm_dir.parent.parent)
    existing = lookup_owned_domain(conn, plan.name)  # OwnershipError for a foreign domain
    before = existing[1] if existing else None
    check_startable(plan)
    sources = media_sources(plan, shape)
    check_sources(sources)
    pool = ensure_pool(conn, plan.disk, system=plan.system_uri)
    disk_volume = check_volume_free(pool, plan.disk.pool, plan.disk.volume, before)
    refs = media_refs(plan, shape, pool_path(pool))
    for ref in refs.values():
        check_volume_free(pool, ref.pool, ref.name, before)
    disk_ref = volume_ref(pool, plan.disk)
    volumes = (*before.volumes, disk_ref, *refs.values()) if before else (disk_ref, *refs.values())
    tag = owner_tag(plan, tuple(dict.fromkeys(volumes)), clock)
    uuid = None
    if existing is not None and before is not None:
        with libvirt_errors(f"reading domain {plan.name}"):
            uuid = str(existing[0].UUIDString())
        tag = dataclasses.replace(tag, created=before.created)  # keep the first creation time
    if plan.serial_log is not None:
        vm_dir.ensure()
    dom = define_xml(conn, build_domain(plan, shape, tag, uuid, refs).to_xml())
    if disk_volume is None and disk_base is not None:
        create_overlay(pool, plan.disk.volume, disk_base)
    elif disk_volume is None:
        create_volume(pool, plan.disk)
    upload_media(conn, pool, refs, sources, vm_dir)
    return dom


def check_startable(plan: Plan) -> None:
    """What must hold before anything is defined for a VM that is going to run."""
    ivshmem = plan.ivshmem
    if ivshmem is not None and ivshmem.socket is not None and not ivshmem.socket.is_socket():
        raise VmforgeError(
            f"ivshmem.model = 'doorbell' needs an ivshmem server listening on {ivshmem.socket}, and none is",
            hint=(
                f"start vmforge's server first: vmforge channel server --socket {ivshmem.socket} "
                f"--shm {ivshmem.path} --size {ivshmem.size // 1024**2}MiB (or use ivshmem.model = 'plain')"
            ),
        )


# Linux input keycodes (include/uapi/linux/input-event-codes.h) for what installers ask for.
KEYCODES = {"enter": 28, "space": 57, "esc": 1, "tab": 15, "f8": 66, "f12": 88}

# virDomainShutoffReason
_SHUTOFF_REASONS = {0: "unknown", 1: "shutdown", 2: "destroyed", 3: "crashed", 4: "migrated", 5: "saved", 6: "failed"}


def send_keys(dom: Any, *names: str, hold_ms: int = 100) -> None:
    """Press ``names`` one after another (e.g. "enter" for "press any key to boot from CD")."""
    for name in names:
        if name not in KEYCODES:
            raise VmforgeError(f"unknown key {name!r}", hint=f"use one of {', '.join(sorted(KEYCODES))}")
        with libvirt_errors(f"sending key {name} to {dom.name()}"):
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, [KEYCODES[name]], 1, 0)


def wait_for_stop(
    dom: Any,
    timeout: float,
    *,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait until the domain is shut off (in the install shape a guest reboot also stops it, since
    ``on_reboot`` is destroy) and return why: shutdown, destroyed, crashed, ...

    Polls the state (libvirt events need an event loop registered before connecting; polling
    works on any connection, remote ones included)."""
    deadline = clock() + timeout
    while True:
        with libvirt_errors(f"reading the state of {dom.name()}"):
            state, reason = dom.state()
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            return _SHUTOFF_REASONS.get(reason, str(reason))
        if clock() >= deadline:
            raise VmforgeError(
                f"domain {dom.name()} still runs after {timeout:.0f}s",
                hint="look at its console (virsh console / the serial log) and raise the timeout if it is just slow",
            )
        sleep(poll)


def start(dom: Any) -> None:
    with libvirt_errors(f"starting domain {dom.name()}"):
        if not dom.isActive():
            dom.create()


def remove_media(dom: Any, roles: tuple[str, ...] = MEDIA_ROLES) -> list[str]:
    """The final shape on a defined (maybe running) domain: vmforge's CD-ROMs leave the persistent
    config; a running guest has its trays emptied, since libvirt refuses a live detach ("disk
    device type 'cdrom' cannot be detached"), so the empty drives disappear
    at the next boot.  Returns the roles removed; a re-run removes nothing.  ``roles``: which
    drives (by the role recorded as their serial) count as vmforge's media."""
    removed: list[str] = []
    with libvirt_errors(f"reading domain {dom.name()}"):
        config = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        live = etree.fromstring(dom.XMLDesc(0).encode()) if dom.isActive() else None
    for disk in config.findall("devices/disk[@device='cdrom']"):
        role = disk.findtext("serial")
        if role not in roles:
            continue  # not one of vmforge's media drives
        with libvirt_errors(f"detaching the {role} media from {dom.name()}"):
            dom.detachDeviceFlags(etree.tostring(disk, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        removed.append(str(role))
    if live is not None:
        for disk in live.findall("devices/disk[@device='cdrom']"):
            source = disk.find("source")
            loaded = source is not None and (source.get("file") or source.get("volume"))
            if disk.findtext("serial") not in roles or source is None or not loaded:
                continue  # not ours, or already empty (an ejected tray keeps <source index='N'/>)
            disk.remove(source)
            # Forced: a guest that has the CD mounted keeps its tray locked ("timed out waiting
            # to open tray"); the media is done with, so the eject must not depend on the guest.
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_DEVICE_MODIFY_FORCE
            with libvirt_errors(f"ejecting the {disk.findtext('serial')} media of {dom.name()}"):
                dom.updateDeviceFlags(etree.tostring(disk, encoding="unicode"), flags)
    return removed
