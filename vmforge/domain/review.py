"""The XML ``vmforge domain xml`` shows: exactly what provisioning would define, read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from vmforge.domain.build import build_domain
from vmforge.domain.media import media_digests, media_refs, media_sources, part_refs
from vmforge.domain.owner import owner_tag
from vmforge.domain.shapes import Shape
from vmforge.host.facts import read_host_facts
from vmforge.ownership import VolumeRef, lookup_owned_domain
from vmforge.plan import MediaFacts, Plan, resolve_plan
from vmforge.spec import Spec
from vmforge.state import utc_now
from vmforge.storage import lookup_pool, pool_path


def plan_on_host(conn: Any, spec: Spec, media: MediaFacts | None = None) -> Plan:
    """The plan with the libvirt host's facts (firmware, TPM, PCI devices) resolved."""
    return resolve_plan(spec, media=media, host=read_host_facts(conn, spec.vm.connect, spec.vm.virt_type.value))


def review_xml(conn: Any, plan: Plan, shape: Shape, clock: Callable[[], datetime] = utc_now) -> str:
    """Creates nothing: the volume key comes from the existing pool or the planned pool folder."""
    pool = lookup_pool(conn, plan.disk.pool)
    folder = pool_path(pool) if pool is not None else plan.disk.pool_dir
    key = str(folder / plan.disk.volume) if folder is not None else ""
    media = media_refs(plan, shape, folder, media_digests(media_sources(plan, shape)))
    parts = part_refs(plan, media, folder)
    tag = owner_tag(plan, (VolumeRef(plan.disk.pool, plan.disk.volume, key), *media.values(), *parts.values()), clock)
    existing = lookup_owned_domain(conn, plan.name)
    uuid = str(existing[0].UUIDString()) if existing else None
    return build_domain(plan, shape, tag, uuid, media).to_xml()
