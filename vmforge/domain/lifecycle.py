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
from vmforge.domain.events import Mechanism, Stopped, StopWatch
from vmforge.domain.media import (
    check_shared_free,
    check_sources,
    is_shared_media,
    media_digests,
    media_refs,
    media_sources,
    part_refs,
    upload_media,
)
from vmforge.domain.owner import owner_tag
from vmforge.domain.shapes import MEDIA_ROLES, Shape
from vmforge.errors import VmforgeError
from vmforge.ivshmem.managed import serve_domain
from vmforge.libvirt_conn import libvirt_errors
from vmforge.logs import get_logger
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import IvshmemPlan, Plan, is_local_uri
from vmforge.state import VmDir, utc_now
from vmforge.storage import check_volume_free, create_overlay, create_volume, ensure_pool, pool_path, volume_ref

log = get_logger("domain.lifecycle")


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
    digests = media_digests(sources)
    pool = ensure_pool(conn, plan.disk, system=plan.system_uri)
    disk_volume = check_volume_free(pool, plan.disk.pool, plan.disk.volume, before)
    folder = pool_path(pool)
    refs = media_refs(plan, shape, folder, digests)
    parts = part_refs(plan, refs, folder)
    for ref in refs.values():
        if is_shared_media(ref):
            check_shared_free(conn, pool, ref, plan.name, before)
        else:
            check_volume_free(pool, ref.pool, ref.name, before)
    for ref in parts.values():
        check_volume_free(pool, ref.pool, ref.name, before)
    disk_ref = volume_ref(pool, plan.disk)
    ours = (disk_ref, *refs.values(), *parts.values())
    volumes = (*before.volumes, *ours) if before else ours
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
    if ivshmem is not None and ivshmem.socket is not None and not is_local_uri(plan.connect):
        raise VmforgeError(
            f"ivshmem.model = 'doorbell' with vm.connect = '{plan.connect}': the ivshmem server must run "
            "on the libvirt host, and vmforge runs the ivshmem server on this machine only",
            hint="run vmforge on the libvirt host for doorbell ivshmem, or use ivshmem.model = 'plain'",
        )


# Linux input keycodes (include/uapi/linux/input-event-codes.h) for what installers ask for.
KEYCODES = {"enter": 28, "space": 57, "esc": 1, "tab": 15, "f8": 66, "f12": 88}


def send_keys(dom: Any, *names: str, hold_ms: int = 100) -> None:
    """Press ``names`` one after another (e.g. "enter" for "press any key to boot from CD")."""
    for name in names:
        if name not in KEYCODES:
            raise VmforgeError(f"unknown key {name!r}", hint=f"use one of {', '.join(sorted(KEYCODES))}")
        with libvirt_errors(f"sending key {name} to {dom.name()}"):
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, [KEYCODES[name]], 1, 0)


def wait_stopped(
    dom: Any,
    timeout: float,
    *,
    uri: str | None = None,
    mechanism: Mechanism = "auto",
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stopped:
    """Wait until the domain is shut off (in the install shape a guest reboot also stops it, since
    ``on_reboot`` is destroy) and say why and how it was noticed.

    libvirt lifecycle events on a dedicated connection (``uri``, default the domain's own), with
    polling when events cannot be had and a periodic state read as safety net
    (:mod:`vmforge.domain.events`).  A domain already off returns at once."""
    with StopWatch(dom, uri=uri, mechanism=mechanism, poll=poll, clock=clock, sleep=sleep) as watch:
        stopped = watch.wait(timeout)
    if stopped is None:
        raise VmforgeError(
            f"domain {watch.name} still runs after {timeout:.0f}s",
            hint="look at its console (virsh console / the serial log) and raise the timeout if it is just slow",
        )
    log.info("domain %s stopped (%s), noticed by %s (%s)", watch.name, stopped.reason, stopped.noticed, watch.mechanism)
    return stopped


def wait_for_stop(
    dom: Any,
    timeout: float,
    *,
    uri: str | None = None,
    mechanism: Mechanism = "auto",
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """:func:`wait_stopped`, returning only why the domain stopped (shutdown, destroyed, ...)."""
    return wait_stopped(dom, timeout, uri=uri, mechanism=mechanism, poll=poll, clock=clock, sleep=sleep).reason


def start(dom: Any, vm_dir: VmDir | None = None, ivshmem: IvshmemPlan | None = None, *, paused: bool = False) -> None:
    """Start ``dom`` unless it runs.  A domain with an ivshmem-doorbell device gets its ivshmem
    server first (vmforge.ivshmem.managed: started, or reused when it already runs); ``vm_dir``
    defaults to the domain's name, ``ivshmem`` (the plan's) gives the memory size before the
    VM's state has one."""
    with libvirt_errors(f"starting domain {dom.name()}"):
        if dom.isActive():
            return
    serve_domain(dom, vm_dir or VmDir(dom.name()), ivshmem)
    with libvirt_errors(f"starting domain {dom.name()}"):
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)


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
