"""The owner tag a domain carries: which VM, which spec and plan, which volumes are ours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vmforge.ownership import OwnerTag, VolumeRef
from vmforge.plan import Plan
from vmforge.state import utc_now


def owner_tag(plan: Plan, volumes: tuple[VolumeRef, ...], clock: Callable[[], datetime] = utc_now) -> OwnerTag:
    return OwnerTag(
        vm=plan.name,
        spec_hash=plan.spec_hash,
        plan_hash=plan.digest(),
        created=clock().isoformat(timespec="seconds"),
        volumes=volumes,
    )
