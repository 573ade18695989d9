"""Run the guards in a guest: copy each script in (hash-verified), run it, judge its answer.

Scripts go in as files and run with ``powershell.exe -File``: the session scripts with the
compiled display helper are far beyond the 32767-character command line that
``-EncodedCommand`` would need.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from vmforge.errors import UsageError
from vmforge.guards.catalog import evaluate, guest_file_bytes
from vmforge.guards.model import GuardReport, GuardResult, MalformedAnswer, Status, parse_answer, raw_excerpt
from vmforge.guards.scripts import (
    SESSION_GUARDS,
    WINDOWS_LAYOUT,
    GuestLayout,
    guard_script,
    session_script,
    watchdog_script,
)
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestError
from vmforge.logs import get_logger
from vmforge.plan import GuardsPlan, Plan
from vmforge.state import VmDir

log = get_logger("guards")

POWERSHELL_FILE = ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File"]
SCRIPT_SLACK_SECONDS = 120.0  # beyond the user-session wait: PnP, registry hives, Add-Type


def guards_plan(plan: Plan) -> GuardsPlan:
    if plan.guards is None:
        raise UsageError(
            f"VM '{plan.name}' has no guard profile (guards.profile = 'none')",
            hint="set guards.profile = 'desktop' or 'compositor' in the spec",
        )
    return plan.guards


class GuardRunner:
    def __init__(
        self,
        plan: Plan,
        vm_dir: VmDir,
        guest: Guest,
        *,
        layout: GuestLayout = WINDOWS_LAYOUT,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.guards = guards_plan(plan)
        self.vm_dir = vm_dir
        self.guest = guest
        self.layout = layout
        self.progress = progress or (lambda _text: None)
        self._prepared = False

    # -- guest files -------------------------------------------------------------------------

    def _remote(self, name: str) -> str:
        return f"{self.layout.root}{self.layout.sep}{name}"

    def _prepare(self) -> None:
        if self._prepared:
            return
        result = self.guest.transport.run(self.guest.adapter.mkdir_argv(self.layout.root), timeout=60.0)
        if not result.ok:
            raise GuestError(
                f"creating {self.layout.root} in the guest failed (exit {result.rc})",
                hint="the guard scripts need an administrator session in the guest",
            )
        if any(guard in SESSION_GUARDS for guard in self.guards.guards):
            self._copy_in(guest_file_bytes(session_script()), self.layout.session_script)
        self._prepared = True

    def _copy_in(self, data: bytes, remote: str) -> None:
        with tempfile.TemporaryDirectory(prefix="vmforge-guards-") as tmp:
            local = Path(tmp) / "script.ps1"
            local.write_bytes(data)
            self.guest.copy_in(local, remote)

    # -- one guard -----------------------------------------------------------------------------

    def run_guard(self, guard: str, mode: str) -> GuardResult:
        self._prepare()
        if mode == "enforce" and guard == "topology-watchdog":
            self._copy_in(guest_file_bytes(watchdog_script(self.guards, self.layout)), self.layout.watchdog_script)
        script = guard_script(guard, self.guards, mode, self.layout)
        remote = self._remote(f"{guard}-{mode}.ps1")
        self._copy_in(guest_file_bytes(script), remote)
        timeout = self.guards.user_session_timeout_s + SCRIPT_SLACK_SECONDS
        completed = self.guest.transport.run([*POWERSHELL_FILE, remote], timeout=timeout)
        try:
            answer = parse_answer(completed.stdout, guard)
        except MalformedAnswer as exc:
            saved = self._save_raw(guard, mode, completed.rc, completed.stdout, completed.stderr)
            log.warning("%s %s: unusable answer (%s), saved to %s", guard, mode, exc, saved)
            return GuardResult(
                guard=guard,
                status=Status.UNVERIFIED,
                summary=f"the guard script's answer is unusable ({exc}; exit {completed.rc}); raw output in {saved}",
                raw_output=str(saved),
            )
        if answer.mode != mode:
            saved = self._save_raw(guard, mode, completed.rc, completed.stdout, completed.stderr)
            return GuardResult(
                guard=guard,
                status=Status.UNVERIFIED,
                summary=f"asked to {mode}, the script answered as {answer.mode}; raw output in {saved}",
                raw_output=str(saved),
            )
        return evaluate(guard, self.guards, self.layout, answer)

    def _save_raw(self, guard: str, mode: str, rc: int, stdout: bytes, stderr: bytes) -> Path:
        folder = self.vm_dir.logs / "guards"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = self.vm_dir.clock().strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"{stamp}-{guard}-{mode}.txt"
        path.write_text(f"exit code {rc}\n" + raw_excerpt(stdout, stderr), encoding="utf-8")
        return path

    # -- all guards ----------------------------------------------------------------------------

    def run(self, mode: str) -> GuardReport:
        results: list[GuardResult] = []
        for guard in self.guards.guards:
            self.progress(f"{mode} {guard}")
            idd = next((r for r in results if r.guard == "idd-desktop"), None)
            if mode == "enforce" and guard == "specialized-panel" and idd is not None and not idd.ok:
                # The panel leaves the desktop only once the IDD carries it: check, do not change.
                checked = self.run_guard(guard, "check")
                results.append(
                    replace(checked, summary=f"not enforced, the IDD is {idd.status.value}; {checked.summary}")
                )
                continue
            results.append(self.run_guard(guard, mode))
        return GuardReport(vm=self.plan.name, operation=mode, profile=self.guards.profile, results=tuple(results))
