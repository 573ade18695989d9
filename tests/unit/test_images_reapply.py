"""Re-applying guards after a revert or re-clone, and reporting their drift, against the
*simulated* Windows guest of the guard tests (tests/guards_sim.py); the probe's honest skip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.guards_sim import SimTransport, SimWindows
from tests.guards_support import guard_plan, guard_spec_data, guards_of
from vmforge.errors import ChecksFailed
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.os_windows import WindowsAdapter
from vmforge.guest.session import Guest
from vmforge.images.reapply import GUARDS_WINDOWS_ONLY, guest_drift, reapply
from vmforge.spec import parse_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

POLICY = "user[vmforge]:Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\NoDispSettingsPage"


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.plan = guard_plan(desktop_users=["vmforge"])
        self.spec = parse_spec(guard_spec_data(desktop_users=["vmforge"]), label="test")
        self.sim = SimWindows(guards_of(self.plan))
        self.transport = SimTransport(self.sim)
        self.guest = Guest(self.transport, WindowsAdapter())
        clock = iter(datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC) for n in range(60))
        self.vm_dir = VmDir("vmft-s2i-win", root=tmp_path, clock=lambda: next(clock))


def test_windows_reapply_enforces_guards_and_repairs_a_changed_setting(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    fresh = guest_drift(rig.spec, rig.plan, rig.vm_dir, rig.guest)
    assert fresh.checked == ["packages", "guards"] and fresh.skipped == []
    assert any(d.startswith("guard policies: missing") for d in fresh.drift), fresh.drift
    assert rig.sim.registry == {}  # checking changed nothing

    done = reapply(rig.spec, rig.plan, rig.vm_dir, rig.guest, reporter=Reporter(quiet=True))
    assert done["packages"] == {"skipped": "the spec lists no packages"}
    statuses = {r["guard"]: r["status"] for r in done["guards"]["guards"]}
    assert statuses["policies"] == "ok" and statuses["idd-desktop"] == "ok"
    assert statuses["topology-watchdog"] == "unverified"  # nobody logged on yet: reported, not failed
    assert rig.sim.registry[POLICY] == 1

    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}  # the user logged on
    assert guest_drift(rig.spec, rig.plan, rig.vm_dir, rig.guest).drift == []

    rig.sim.registry[POLICY] = 0  # deliberate damage: a guarded setting turned off
    damaged = guest_drift(rig.spec, rig.plan, rig.vm_dir, rig.guest)
    assert damaged.drift == [f"guard policies: drifted ({POLICY}: expected 1, found 0)"]
    repaired = reapply(rig.spec, rig.plan, rig.vm_dir, rig.guest, reporter=Reporter(quiet=True))
    policies = next(r for r in repaired["guards"]["guards"] if r["guard"] == "policies")
    assert policies["changed"] == [POLICY]
    assert rig.sim.registry[POLICY] == 1
    assert guest_drift(rig.spec, rig.plan, rig.vm_dir, rig.guest).drift == []


def test_windows_reapply_fails_when_a_guard_cannot_be_enforced(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sim.idd_can_attach = False
    with pytest.raises(ChecksFailed, match="idd-desktop") as caught:
        reapply(rig.spec, rig.plan, rig.vm_dir, rig.guest, reporter=Reporter(quiet=True))
    assert caught.value.exit_code == 3


def test_guards_are_skipped_honestly_on_a_linux_guest(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    linux = Guest(rig.transport, LinuxAdapter())
    done = reapply(rig.spec, rig.plan, rig.vm_dir, linux, reporter=Reporter(quiet=True))
    assert done["guards"]["skipped"].startswith(GUARDS_WINDOWS_ONLY)
    drift = guest_drift(rig.spec, rig.plan, rig.vm_dir, linux)
    assert drift.checked == ["packages"] and drift.skipped[0].startswith("guards: " + GUARDS_WINDOWS_ONLY)
    assert rig.transport.calls == []  # nothing ran in the guest
