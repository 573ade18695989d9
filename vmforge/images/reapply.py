"""Packages and guards on a VM that came back from a snapshot or an image: check them (drift)
and apply them again (``vmforge clone``, ``vmforge reprovision``).

* **packages**: the spec's ``[[packages]]`` through the one install flow
  (:func:`vmforge.packages.install.install_packages`): a package recorded as installed whose
  verification passes is left alone, one that fails verification is repaired, one never
  installed on this VM (a fresh clone) is installed.  Drift = not recorded as installed with
  today's digest, or its verification steps fail in the guest.
* **guards**: Windows only - :func:`vmforge.guards.enforce` / :func:`vmforge.guards.check`.  On
  any other guest (the probe) they are recorded as skipped, with the reason; never as ok.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmforge import guards
from vmforge.errors import ChecksFailed
from vmforge.guards.model import Status
from vmforge.guest.session import Guest
from vmforge.packages.catalog import Package, find_package
from vmforge.packages.install import STATE_KEY as PACKAGES_KEY
from vmforge.packages.install import default_stage_root, guest_target, install_packages
from vmforge.packages.preflight import check_package
from vmforge.packages.steps import verify_steps
from vmforge.plan import Plan
from vmforge.spec import Spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

GUARDS_WINDOWS_ONLY = "guards are Windows-only (display-settings guards need a Windows guest)"


@dataclass
class GuestDrift:
    drift: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _packages(spec: Spec) -> list[Package]:
    return [find_package(ref.name, ref.path) for ref in spec.packages]


def guards_skip_reason(plan: Plan, guest: Guest) -> str | None:
    if guest.adapter.family != "windows":
        return f"{GUARDS_WINDOWS_ONLY}; this guest is {guest.adapter.family}"
    if plan.guards is None:
        return "no guard profile (guards.profile = 'none')"
    return None


def package_drift(spec: Spec, vm_dir: VmDir, guest: Guest, *, stage_root: str | None = None) -> list[str]:
    """One line per package of the spec that is not installed as the spec says."""
    packages = _packages(spec)
    if not packages:
        return []
    target = guest_target(guest)
    root = stage_root or default_stage_root(guest)
    state = vm_dir.load()
    records: dict[str, Any] = dict(state.extra.get(PACKAGES_KEY, {})) if state else {}
    found = []
    for package in packages:
        item = check_package(package, spec, target)
        record = records.get(item.name)
        if record is None or record.get("status") != "installed":
            found.append(f"package {item.name}: not installed on this VM")
            continue
        if record.get("digest") != item.digest():
            found.append(f"package {item.name}: installed from other files than the spec's package has now")
            continue
        stage = guest.adapter.join(root, item.name)
        for step in verify_steps(item, guest.adapter, stage):
            result = guest.transport.run(list(step.argv), timeout=step.timeout)
            if not result.ok:
                found.append(f"package {item.name}: {step.label} fails in the guest (exit {result.rc})")
                break
    return found


def guest_drift(spec: Spec, plan: Plan, vm_dir: VmDir, guest: Guest, *, stage_root: str | None = None) -> GuestDrift:
    """Package and guard drift of the running guest (reads only)."""
    report = GuestDrift()
    report.drift += package_drift(spec, vm_dir, guest, stage_root=stage_root)
    report.checked.append("packages")
    reason = guards_skip_reason(plan, guest)
    if reason is not None:
        report.skipped.append(f"guards: {reason}")
    else:
        checked = guards.check(spec, plan, vm_dir, guest)
        report.drift += [f"guard {r.guard}: {r.status.value} ({r.summary})" for r in checked.not_ok()]
        report.checked.append("guards")
    return report


def reapply(
    spec: Spec,
    plan: Plan,
    vm_dir: VmDir,
    guest: Guest,
    *,
    reporter: Reporter,
    stage_root: str | None = None,
) -> dict[str, Any]:
    """Install the spec's packages again and enforce its guards; raises ChecksFailed when a guard
    reads back drifted or missing after enforcing ("unverified" - e.g. the topology watchdog
    before anyone logged on - is reported, not failed).  Returns what each did (for JSON)."""
    result: dict[str, Any] = {}
    if spec.packages:
        with reporter.step(f"re-applying {len(spec.packages)} package(s) to {plan.name}"):
            installed = install_packages(spec, plan, vm_dir, guest, stage_root=stage_root, reporter=reporter)
        result["packages"] = installed.to_data()
    else:
        result["packages"] = {"skipped": "the spec lists no packages"}
    reason = guards_skip_reason(plan, guest)
    if reason is not None:
        result["guards"] = {"skipped": reason}
        return result
    with reporter.step(f"enforcing guards on {plan.name}"):
        enforced = guards.enforce(spec, plan, vm_dir, guest)
    result["guards"] = enforced.to_data()
    failed = [r.guard for r in enforced.not_ok() if r.status is not Status.UNVERIFIED]
    if failed:
        raise ChecksFailed(
            f"guards on '{plan.name}' after re-applying: {', '.join(failed)} not ok",
            hint=f"see 'vmforge guards check {plan.name}'",
            report=result,
        )
    return result
