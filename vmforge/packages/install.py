"""Installing packages into a guest: preflight, verified copies, OS steps, verify, bookkeeping.

The flow for each package (all preflight checks for *every* package run before the first copy):

1. compare with the VM's record (``state.json`` ``extra.packages.<name>``): same digest and the
   guest still verifies -> "already installed", nothing is touched; a newer DriverVer (drivers)
   or another version (apps) -> "upgraded"; changed files under the same DriverVer are refused
   (Windows would keep the old binary);
2. copy every file into the staging folder, each proven by a SHA-256 taken in the guest (files
   already there with the right hash - staged from the answer media by the bootstrap script,
   see :mod:`vmforge.media.package_media`, or left by an earlier run - are used as they are;
   the agent copy is the fallback for anything missing or different);
3. place the rendered config files at their destinations (same proof);
4. the OS steps (:mod:`vmforge.packages.steps`): certificate, ``pnputil``, root device node, or
   the app's install commands;
5. verify; record the outcome.  A failure records and reports exactly what was changed so far.
"""

from __future__ import annotations

import json
import ntpath
import posixpath
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.errors import VmforgeError
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestError
from vmforge.hashing import sha256_file as file_sha256
from vmforge.packages.catalog import Package, find_package
from vmforge.packages.inf import guest_arch, parse_driver_ver
from vmforge.packages.manifest import PackageError, PackageKind
from vmforge.packages.preflight import CheckedPackage, Target, check_package
from vmforge.packages.steps import GuestStep, facts_argv, install_steps, stage_path, verify_steps
from vmforge.plan import Plan
from vmforge.spec import Spec
from vmforge.state import VmDir, VmState
from vmforge.ui import Reporter

STATE_KEY = "packages"
WINDOWS_STAGE_ROOT = "C:\\ProgramData\\vmforge\\packages"  # the answer media's packages are staged here too
FACTS_TIMEOUT = 60.0
MKDIR_TIMEOUT = 60.0


class PackageInstallFailed(VmforgeError):
    """A package failed part-way; ``changed`` lists what it had already changed in the guest."""

    def __init__(self, message: str, *, package: str, step: str, changed: Sequence[str], hint: str) -> None:
        what = "; ".join(changed) if changed else "nothing"
        super().__init__(f"{message}; changed before the failure: {what}", hint=hint)
        self.package = package
        self.step = step
        self.changed = list(changed)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.update({"package": self.package, "failed_step": self.step, "changed": self.changed})
        return data


@dataclass
class PackageOutcome:
    name: str
    action: str  # 'installed', 'upgraded', 'repaired', 'already installed'
    version: str
    driver_ver: str | None
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reboot_required: bool = False
    # Files already in the staging folder with the right sha256 (staged from the answer media
    # at first logon, or left by an earlier run): used as they are, not copied again.
    already_staged: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "version": self.version,
            "driver_ver": self.driver_ver,
            "changed": self.changed,
            "warnings": self.warnings,
            "reboot_required": self.reboot_required,
            "already_staged": self.already_staged,
        }


@dataclass
class Report:
    vm: str
    outcomes: list[PackageOutcome] = field(default_factory=list)

    @property
    def reboot_required(self) -> bool:
        return any(o.reboot_required for o in self.outcomes)

    def to_data(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "packages": [o.to_data() for o in self.outcomes],
            "reboot_required": self.reboot_required,
        }


def default_stage_root(guest: Guest) -> str:
    if guest.adapter.family == "windows":
        return WINDOWS_STAGE_ROOT
    return "/var/lib/vmforge/packages"


def guest_target(guest: Guest, *, edition_id: str | None = None, build: int | None = None) -> Target:
    """What the guest is (OS, architecture; on Windows also edition and build, read from the
    registry when not given).  Runs before anything is copied."""
    info = guest.transport.os_info()
    argv = facts_argv(guest.adapter)
    if argv is not None and (edition_id is None or build is None):
        result = guest.transport.run(argv, timeout=FACTS_TIMEOUT)
        if result.ok:
            try:
                facts = json.loads(result.stdout.decode("utf-8", "replace"))
                edition_id = edition_id or str(facts.get("edition_id") or "") or None
                build = build or int(facts.get("build") or 0) or None
            except (ValueError, AttributeError):
                pass
    return Target(info.family, guest_arch(info.machine), edition_id, build)


def install_packages(
    spec: Spec,
    plan: Plan,
    vm_dir: VmDir,
    guest: Guest,
    *,
    packages: Sequence[Package] | None = None,
    edition_id: str | None = None,
    build: int | None = None,
    stage_root: str | None = None,
    reporter: Reporter | None = None,
) -> Report:
    """Install the spec's ``[[packages]]`` (or ``packages``) into the running guest of ``plan``.

    Contract (the ``create`` step calls this once the guest agent answers):

    - The caller holds ``vm_dir.lock()`` and owns ``guest`` (a :class:`Guest` on the VM).
    - ``edition_id``/``build``: from the ISO inspection (install.wim's EditionID and build) when
      known; on Windows guests what is missing is read from the guest's registry.
    - Every package is found, validated and checked (files, sha256, INF, certificate, OS,
      architecture, build, edition) before anything is copied: a problem raises
      :class:`PackageError` (exit 2) and the guest is untouched.
    - Idempotent: a package recorded with the same digest whose verification passes is left
      alone ("already installed"); the VM's ``state.json`` records each outcome under
      ``extra.packages``.
    - A failure in the guest raises :class:`PackageInstallFailed` naming the failed step and
      every change made before it; the record says ``status = "failed"`` so the next run
      installs again.
    - Returns a :class:`Report`; ``report.reboot_required`` asks the caller to reboot.
    """
    if packages is None:
        packages = [find_package(ref.name, ref.path) for ref in spec.packages]
    return install_into_guest(
        spec,
        plan.name,
        vm_dir,
        guest,
        packages,
        edition_id=edition_id,
        build=build,
        stage_root=stage_root,
        reporter=reporter,
    )


def install_into_guest(
    spec: Spec,
    vm_name: str,
    vm_dir: VmDir,
    guest: Guest,
    packages: Sequence[Package],
    *,
    edition_id: str | None = None,
    build: int | None = None,
    stage_root: str | None = None,
    reporter: Reporter | None = None,
) -> Report:
    """:func:`install_packages` for an existing VM known by name (``vmforge packages install``)."""
    reporter = reporter or Reporter(quiet=True)
    report = Report(vm_name)
    if not packages:
        return report
    target = guest_target(guest, edition_id=edition_id, build=build)
    checked = [check_package(package, spec, target) for package in packages]
    root = stage_root or default_stage_root(guest)
    state = vm_dir.load() or VmState(name=vm_name)
    for item in checked:
        with reporter.step(f"package {item.name}"):
            for warning in item.warnings:
                reporter.warn(warning)
            outcome = _install_one(item, guest, root, vm_dir, state)
            reporter.info(f"{item.name}: {outcome.action}")
        report.outcomes.append(outcome)
    return report


def _records(state: VmState) -> dict[str, Any]:
    records = state.extra.setdefault(STATE_KEY, {})
    assert isinstance(records, dict)
    return records


def decide_action(item: CheckedPackage, record: dict[str, Any] | None) -> str:
    """'installed', 'upgraded' or 'check' (same digest: verify decides); PackageError when a
    driver's files changed without a newer DriverVer."""
    if record is None or record.get("status") != "installed":
        return "installed"
    if record.get("digest") == item.digest():
        return "check"
    manifest = item.package.manifest
    if manifest.kind is PackageKind.DRIVER:
        old = parse_driver_ver(str(record.get("driver_ver") or ""))
        new = item.driver_ver
        if old is not None and new is not None and new <= old:
            raise PackageError(
                f"{item.name}: the files differ from the installed package but DriverVer {new.text} is not "
                f"newer than the installed {old.text}",
                hint="bump DriverVer in the INF (Windows keeps the installed driver otherwise)",
            )
    return "upgraded"


def _install_one(item: CheckedPackage, guest: Guest, root: str, vm_dir: VmDir, state: VmState) -> PackageOutcome:
    records = _records(state)
    record = records.get(item.name)
    decision = decide_action(item, record)
    adapter = guest.adapter
    stage = adapter.join(root, item.name)
    driver_ver = item.driver_ver.text if item.driver_ver else None
    outcome = PackageOutcome(item.name, decision, item.package.manifest.version, driver_ver,
                             warnings=list(item.warnings))  # fmt: skip
    if decision == "check":
        if not _verify_problems(item, guest, stage):
            outcome.action = "already installed"
            return outcome
        outcome.action = "repaired"
    changed = outcome.changed
    current = "copy files"
    try:
        for check in item.files:
            current = f"copy {check.path}"
            remote = stage_path(adapter, stage, check.path)
            assert check.sha256 is not None
            if _place(guest, check.local, check.sha256, remote):
                changed.append(f"copied {check.path} to {remote} (sha256 verified in the guest)")
            else:
                outcome.already_staged.append(check.path)
        with tempfile.TemporaryDirectory(prefix="vmforge-config-") as scratch:
            for destination, content in item.configs.items():
                current = f"place config {destination}"
                local = Path(scratch) / "config"
                local.write_bytes(content)
                if _place(guest, local, file_sha256(local), destination):
                    changed.append(f"placed config {destination} (sha256 verified in the guest)")
        for step in install_steps(item, adapter, stage):
            current = step.label
            result = guest.transport.run(list(step.argv), timeout=step.timeout)
            marked = _markers(result.stdout, outcome)
            if not result.ok:
                _fail(item, step=step, rc=result.rc, output=result.stderr or result.stdout, changed=changed,
                      vm_dir=vm_dir, state=state)  # fmt: skip
            if not marked and item.package.manifest.kind is PackageKind.APP:
                changed.append(f"ran {step.label.removeprefix('run ')}")
        current = "verify"
        problems = _verify_problems(item, guest, stage)
        if problems:
            label, rc, output = problems[0]
            _fail(item, step=GuestStep(f"verify: {label}", ()), rc=rc, output=output, changed=changed,
                  vm_dir=vm_dir, state=state)  # fmt: skip
    except GuestError as exc:
        _save(vm_dir, state, item, status="failed", changed=changed, failed_step=current)
        raise PackageInstallFailed(
            f"{item.name}: {current} failed: {exc.message}",
            package=item.name,
            step=current,
            changed=changed,
            hint=exc.hint or "check that the guest is running and its agent answers, then run the command again",
        ) from None
    _save(vm_dir, state, item, status="installed", changed=changed)
    return outcome


def _place(guest: Guest, local: Path, sha256: str, remote: str) -> bool:
    """Make ``remote`` hold ``local``'s bytes; False when it already did (nothing copied)."""
    try:
        if guest.remote_sha256(remote) == sha256:
            return False
    except GuestError:
        pass  # missing or unreadable: copy it
    parent = (ntpath if guest.adapter.family == "windows" else posixpath).dirname(remote)
    made = guest.transport.run(guest.adapter.mkdir_argv(parent), timeout=MKDIR_TIMEOUT)
    if not made.ok:
        raise GuestError(
            f"creating {parent} in the guest failed (exit {made.rc}): "
            f"{made.stderr.decode('utf-8', 'replace').strip()[:200]}"
        )
    if guest.copy_in(local, remote) != sha256:
        raise GuestError(
            f"{local} changed on the host after the package check",
            hint="do not modify package files during an install; run it again",
        )
    return True


def _markers(stdout: bytes, outcome: PackageOutcome) -> bool:
    """Collect ``VMFORGE-CHANGE``/``VMFORGE-REBOOT`` lines; True when the step spoke in markers."""
    spoke = False
    for line in stdout.decode("utf-8", "replace").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "VMFORGE-CHANGE":
            outcome.changed.append(rest)
            spoke = True
        elif word == "VMFORGE-KEPT":
            spoke = True
        elif word == "VMFORGE-REBOOT":
            outcome.reboot_required = True
    return spoke


def _verify_problems(item: CheckedPackage, guest: Guest, stage: str) -> list[tuple[str, int, bytes]]:
    problems = []
    for step in verify_steps(item, guest.adapter, stage):
        result = guest.transport.run(list(step.argv), timeout=step.timeout)
        if not result.ok:
            problems.append((step.label, result.rc, result.stderr or result.stdout))
    return problems


def _fail(
    item: CheckedPackage,
    *,
    step: GuestStep,
    rc: int,
    output: bytes,
    changed: list[str],
    vm_dir: VmDir,
    state: VmState,
) -> None:
    _save(vm_dir, state, item, status="failed", changed=changed, failed_step=step.label)
    detail = output.decode("utf-8", "replace").strip().splitlines()
    said = f": {detail[-1][:200]}" if detail else ""
    raise PackageInstallFailed(
        f"{item.name}: {step.label} exited {rc} in the guest{said}",
        package=item.name,
        step=step.label,
        changed=changed,
        hint="fix the cause and run the install again; files already in place are not copied twice",
    )


def _save(vm_dir: VmDir, state: VmState, item: CheckedPackage, *, status: str, changed: list[str],
          failed_step: str | None = None) -> None:  # fmt: skip
    record: dict[str, Any] = {
        "status": status,
        "kind": item.package.manifest.kind.value,
        "version": item.package.manifest.version,
        "driver_ver": item.driver_ver.text if item.driver_ver else None,
        "digest": item.digest(),
        "files": {c.path: c.sha256 for c in item.files},
        "configs": sorted(item.configs),
        "changed": list(changed),
        "at": vm_dir.clock().isoformat(timespec="seconds"),
    }
    if failed_step is not None:
        record["failed_step"] = failed_step
    _records(state)[item.name] = record
    vm_dir.save(state)
