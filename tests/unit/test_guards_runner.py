"""Guard enforcement and checking against a *simulated* Windows guest (tests/guards_sim.py):
what is enforced, what drift is detected, how it is reported, idempotence, bad answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.guards_sim import SimTransport, SimWindows
from tests.guards_support import guard_plan, guards_of
from vmforge import guards
from vmforge.errors import UsageError
from vmforge.guards.model import GuardReport, Status
from vmforge.guest.os_windows import WindowsAdapter
from vmforge.guest.session import Guest
from vmforge.plan import Plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir


class Rig:
    def __init__(self, tmp_path: Path, **guard_settings: Any) -> None:
        guard_settings.setdefault("desktop_users", ["vmforge"])
        self.plan = guard_plan(**guard_settings)
        self.sim = SimWindows(guards_of(self.plan))
        self.transport = SimTransport(self.sim)
        self.guest = Guest(self.transport, WindowsAdapter())
        clock = iter(datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC) for n in range(60))
        self.vmdir = VmDir("vmft-grd-vm", root=tmp_path, clock=lambda: next(clock))
        self.spec = parse_spec({}, label="unused")

    def enforce(self) -> GuardReport:
        return guards.enforce(self.spec, self.plan, self.vmdir, self.guest)

    def check(self) -> GuardReport:
        return guards.check(self.spec, self.plan, self.vmdir, self.guest)


def statuses(report: GuardReport) -> dict[str, str]:
    return {r.guard: r.status.value for r in report.results}


def result(report: GuardReport, guard: str) -> Any:
    return next(r for r in report.results if r.guard == guard)


def test_fresh_guest_check_reports_what_is_missing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    report = rig.check()
    assert statuses(report) == {
        "policies": "missing",
        "idd-desktop": "drifted",
        "specialized-panel": "drifted",
        "topology-watchdog": "missing",  # no task, no script (its heartbeat cannot be read either)
    }
    idd = result(report, "idd-desktop")
    assert [(i.id, i.state.value, i.found) for i in idd.drift()] == [("desktop.attached", "differs", False)]
    assert not report.ok
    assert rig.sim.registry == {} and rig.sim.task is None  # check changed nothing


def test_enforce_applies_everything_and_reports_changes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    report = rig.enforce()
    pol = result(report, "policies")
    assert pol.status is Status.OK
    assert len(pol.changed) == 5  # 2 policies x (vmforge, .default) + SettingsPageVisibility
    assert "user[.default]:Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\NoDispCPL" in pol.changed
    assert result(report, "idd-desktop").changed == ("desktop.attached",)
    assert result(report, "specialized-panel").changed == ("panel.specialized",)
    wd = result(report, "topology-watchdog")
    assert wd.changed == ("task.registered",)
    # The watchdog has not run yet (nobody logged on since): never 'ok' without a heartbeat.
    assert wd.status is Status.UNVERIFIED
    assert "has not run in a user session yet" in wd.summary
    # The watchdog script went in through the verified copy.
    assert guards_of(rig.plan) and rig.sim.files["C:\\ProgramData\\vmforge\\guards\\watchdog.ps1"].startswith(
        b"\xef\xbb\xbf# vmforge:"
    )


def test_enforce_is_idempotent_and_check_then_passes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.enforce()
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}  # the user logged on
    again = rig.enforce()
    assert [r.changed for r in again.results] == [(), (), (), ()]
    assert again.ok
    check = rig.check()
    assert check.ok and statuses(check) == dict.fromkeys(statuses(check), "ok")
    assert rig.sim.specialize_calls == 1


def test_drift_is_detected_named_and_repaired_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.enforce()
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}
    item = "user[vmforge]:Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\NoDispSettingsPage"
    rig.sim.registry[item] = 0  # a user or an app turned it off
    rig.sim.idd_attached = False  # and detached the IDD
    check = rig.check()
    pol = result(check, "policies")
    assert pol.status is Status.DRIFTED
    assert [(i.id, i.expected, i.found) for i in pol.drift()] == [(item, 1, 0)]
    assert pol.summary == f"{item}: expected 1, found 0"
    assert result(check, "idd-desktop").status is Status.DRIFTED
    repaired = rig.enforce()
    assert result(repaired, "policies").changed == (item,)
    assert result(repaired, "idd-desktop").changed == ("desktop.attached",)
    assert repaired.ok


def test_no_user_session_is_unverified_never_ok(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.enforce()
    rig.sim.watchdog_state = {"alive": False, "valve_tripped": False}
    rig.sim.session_user = None
    check = rig.check()
    assert statuses(check) == {
        "policies": "ok",
        "idd-desktop": "unverified",
        "specialized-panel": "unverified",
        "topology-watchdog": "unverified",
    }
    assert "no desktop session of vmforge is open to ask" in result(check, "idd-desktop").summary


def test_rejected_specialization_is_reported_precisely(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sim.specialize_rc = 87
    report = rig.enforce()
    panel = result(report, "specialized-panel")
    assert panel.status is Status.DRIFTED
    assert "Windows rejected DisplayConfigSetDeviceInfo(SET_MONITOR_SPECIALIZATION) for DELL U2720Q" in panel.summary
    assert "ERROR_INVALID_PARAMETER (87)" in panel.summary
    assert "Remove display from desktop" in panel.summary
    assert panel.facts["specialize_calls"] == [{"name": "DELL U2720Q", "target_id": 4357, "rc": 87}]
    assert panel.changed == ()


def test_unsupported_edition_in_the_guest_changes_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sim.edition = "Professional"
    panel = result(rig.enforce(), "specialized-panel")
    assert panel.status is Status.DRIFTED
    assert panel.summary.startswith("edition Professional has no specialized displays")
    assert rig.sim.specialize_calls == 0
    old_build = Rig(tmp_path / "b")
    old_build.sim.build = 18363
    assert result(old_build.enforce(), "specialized-panel").drift()[0].id == "build"


def test_missing_idd_is_missing_and_the_panel_is_left_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sim.idd_present = False
    report = rig.enforce()
    idd = result(report, "idd-desktop")
    assert idd.status is Status.MISSING
    assert "install the IDD package" in idd.summary
    panel = result(report, "specialized-panel")
    assert panel.summary.startswith("not enforced, the IDD is missing")
    assert rig.sim.specialize_calls == 0
    assert rig.transport.guard_runs().count("C:\\ProgramData\\vmforge\\guards\\specialized-panel-check.ps1") == 1


def test_disabled_idd_is_enabled(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sim.idd_problem = 22
    assert result(rig.check(), "idd-desktop").drift()[0].found == "Error"
    idd = result(rig.enforce(), "idd-desktop")
    assert idd.status is Status.OK and idd.changed == ("device.status", "desktop.attached")


def test_user_without_profile_inherits_the_default_profile(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["policies"])
    rig.sim.profiles.discard("vmforge")
    pol = result(rig.enforce(), "policies")
    assert pol.status is Status.OK
    notes = {i.id: i.note for i in pol.items if i.note}
    assert all(n == "no profile yet: inherits the default profile's value" for n in notes.values()) and len(notes) == 2
    without_default = Rig(tmp_path / "b", profile="desktop", guards=["policies"], default_profile=False)
    without_default.sim.profiles.discard("vmforge")
    pol = result(without_default.enforce(), "policies")
    assert pol.status is Status.DRIFTED
    assert {i.note for i in pol.drift()} == {"no profile yet, and the default profile lacks the value"}


def test_missing_account_is_drift_with_the_guest_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["policies"])
    rig.sim.accounts.discard("vmforge")
    pol = result(rig.enforce(), "policies")
    assert pol.status is Status.DRIFTED
    assert "no account 'vmforge' in the guest" in pol.errors


def test_guest_errors_downgrade_ok_to_unverified(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["policies"])
    rig.enforce()
    rig.sim.script_errors = ["reg unload HKU\\vmforge-1a2b3c4d failed (1)"]
    pol = result(rig.check(), "policies")
    assert pol.status is Status.UNVERIFIED
    assert "reg unload" in pol.summary


def test_tripped_safety_valve_is_drift_and_enforce_resets_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["topology-watchdog"])
    rig.enforce()
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": True}
    wd = result(rig.check(), "topology-watchdog")
    assert wd.status is Status.DRIFTED
    assert [(i.id, i.found) for i in wd.drift()] == [("valve.tripped", True)]
    assert result(rig.enforce(), "topology-watchdog").changed == ("valve.tripped",)


def test_task_users_compare_as_names_not_as_text(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["topology-watchdog"], desktop_users=["Bob", "alice"])
    rig.enforce()
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}
    assert rig.sim.task is not None
    rig.sim.task["users"] = "alice,bob"  # Sort-Object order, Windows' case
    assert result(rig.check(), "topology-watchdog").ok
    rig.sim.task["users"] = "alice"
    wd = result(rig.check(), "topology-watchdog")
    assert [(i.id, i.expected) for i in wd.drift()] == [("task.users", {"same_names": ["Bob", "alice"]})]


def test_changed_watchdog_script_is_drift(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["topology-watchdog"])
    rig.enforce()
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}
    rig.sim.files["C:\\ProgramData\\vmforge\\guards\\watchdog.ps1"] += b"\r\n# tampered"
    wd = result(rig.check(), "topology-watchdog")
    assert [i.id for i in wd.drift()] == ["script.sha256"]


MALFORMED = [
    (0, b"", b"", "empty output"),
    (1, b"", b"Add-Type : Cannot add type. Compilation errors occurred.\r\n", "empty output"),
    (0, b"WARNING: something\r\nnot json at all\r\n", b"", "no JSON object"),
    (0, b'{"vmforge_guard": 2, "guard": "policies", "mode": "check"}', b"", "vmforge_guard is 2"),
    (0, b'{"vmforge_guard": 1, "guard": "idd-desktop", "mode": "check"}', b"", "for guard 'idd-desktop'"),
    (0, b'{"vmforge_guard": 1, "guard": "policies", "mode": "check", "found": [1]}', b"", "'found' is list"),
    (0, b'{"vmforge_guard": 1, "guard": "policies", "mode": "check", "changed": [1]}', b"", "not a list of strings"),
    (0, b'{"vmforge_guard": 1, "guard": "policies", "mode": "check", "found": {', b"", "no JSON object"),
    (0, b'{"vmforge_guard": 1, "guard": "policies", "mode": "repair"}', b"", "mode is 'repair'"),
    (0, b"\xff\xfe\x00garbage\x80", b"", "no JSON object"),
]


@pytest.mark.parametrize(("rc", "stdout", "stderr", "why"), MALFORMED)
def test_malformed_answer_is_unverified_with_raw_text_saved(
    tmp_path: Path, rc: int, stdout: bytes, stderr: bytes, why: str
) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["policies"])
    rig.sim.override[("policies", "check")] = (rc, stdout, stderr)
    pol = result(rig.check(), "policies")
    assert pol.status is Status.UNVERIFIED
    assert why in pol.summary
    saved = Path(pol.raw_output)
    assert saved.parent == rig.vmdir.logs / "guards"
    assert saved.name == "20260101T000000000000Z-policies-check.txt"
    text = saved.read_bytes().decode()
    assert text.startswith(f"exit code {rc}\n")
    assert stdout.decode("utf-8", "replace") in text and stderr.decode() in text


def test_answer_for_the_other_mode_is_not_trusted(tmp_path: Path) -> None:
    rig = Rig(tmp_path, profile="desktop", guards=["policies"])
    answer = rig.sim.answer("policies", "check")
    rig.sim.override[("policies", "enforce")] = (0, json.dumps(answer).encode(), b"")
    pol = result(rig.enforce(), "policies")
    assert pol.status is Status.UNVERIFIED and "answered as check" in pol.summary


def test_report_document_is_machine_readable(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    data = json.loads(json.dumps(rig.check().to_data()))
    assert set(data) == {"schema", "vm", "operation", "profile", "ok", "counts", "guards"}
    assert data["counts"] == {"ok": 0, "drifted": 2, "missing": 2, "unverified": 0}
    panel = next(g for g in data["guards"] if g["guard"] == "specialized-panel")
    assert panel["items"][0] == {
        "item": "edition",
        "state": "ok",
        "expected": {"one_of": list(panel["items"][0]["expected"]["one_of"])},
        "found": "Enterprise",
    }
    assert {"guard", "status", "summary", "drift", "items", "changed", "facts", "errors", "raw_output"} == set(panel)


def test_no_guard_profile_is_a_usage_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    bare: Plan = rig.plan.__class__(**{**rig.plan.__dict__, "guards": None})
    with pytest.raises(UsageError, match="no guard profile"):
        guards.check(rig.spec, bare, rig.vmdir, rig.guest)


def test_scripts_run_from_files_not_the_command_line(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.check()
    for call in rig.transport.calls:
        assert sum(len(a) for a in call) < 8000  # far below Windows' 32767-character command line
    assert rig.transport.guard_runs() == [
        f"C:\\ProgramData\\vmforge\\guards\\{g}-check.ps1"
        for g in ("policies", "idd-desktop", "specialized-panel", "topology-watchdog")
    ]
