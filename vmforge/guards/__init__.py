"""Display-settings guards: keep the compositor's display arrangement from being broken.

The library hook the ``create`` pipeline calls::

    report = vmforge.guards.enforce(spec, plan, vm_dir, guest)   # applies what drifted
    report = vmforge.guards.check(spec, plan, vm_dir, guest)     # reads back, changes nothing

Both return a :class:`GuardReport`; ``report.ok`` is true only when every guard was read back
from the guest and matches the plan.  See docs/guards.md.
"""

from __future__ import annotations

from collections.abc import Callable

from vmforge.guards.model import GuardReport, GuardResult, Status
from vmforge.guards.runner import GuardRunner
from vmforge.guards.scripts import WINDOWS_LAYOUT, GuestLayout
from vmforge.guest.session import Guest
from vmforge.plan import Plan
from vmforge.spec import Spec
from vmforge.state import VmDir

__all__ = ["GuardReport", "GuardResult", "Status", "check", "enforce"]


def enforce(
    spec: Spec,
    plan: Plan,
    vm_dir: VmDir,
    guest: Guest,
    *,
    layout: GuestLayout = WINDOWS_LAYOUT,
    progress: Callable[[str], None] | None = None,
) -> GuardReport:
    """Apply every guard of the profile that drifted (idempotent); the report says what changed
    and what each guard read back afterwards."""
    del spec  # the plan carries the resolved guard profile
    return GuardRunner(plan, vm_dir, guest, layout=layout, progress=progress).run("enforce")


def check(
    spec: Spec,
    plan: Plan,
    vm_dir: VmDir,
    guest: Guest,
    *,
    layout: GuestLayout = WINDOWS_LAYOUT,
    progress: Callable[[str], None] | None = None,
) -> GuardReport:
    """Read every guard back from the guest without changing anything."""
    del spec
    return GuardRunner(plan, vm_dir, guest, layout=layout, progress=progress).run("check")
