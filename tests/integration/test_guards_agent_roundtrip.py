"""The guards through a real transport: Debian's qemu-ga on the host (no VM, no Windows).

Real: the agent protocol, the guard scripts and the watchdog copied in 64 KiB chunks and
verified by a hash computed on the far side, exit codes, stdout/stderr, the host parsing and
judging what came back, the CLI's exit code 3 and JSON report.  Simulated: the answers - a
stand-in ``powershell.exe`` (tests/data/guards/powershell-shim.py) prints answers prepared from
the simulated guest model, because no Windows runs here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guards_sim import SimWindows
from tests.guards_support import guard_plan, guards_of
from tests.integration.test_agent_host_qga import HostAgent
from vmforge import guards
from vmforge.guards.catalog import guest_file_bytes
from vmforge.guards.model import Status
from vmforge.guards.scripts import GuestLayout, guard_script, watchdog_script
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import UnixSocketChannel
from vmforge.guest.os_windows import WindowsAdapter
from vmforge.guest.session import Guest
from vmforge.spec import parse_spec
from vmforge.state import VmDir

pytestmark = pytest.mark.integration

SHIM = Path(__file__).resolve().parents[1] / "data" / "guards" / "powershell-shim.py"


class Rig:
    def __init__(self, tmp_path: Path, agent: HostAgent) -> None:
        self.answers = tmp_path / "answers"
        self.layout = GuestLayout(root=str(tmp_path / "guest-root"), sep="/")
        self.plan = guard_plan(desktop_users=["vmforge"])
        self.sim = SimWindows(guards_of(self.plan), layout=self.layout)
        transport = AgentTransport(UnixSocketChannel(agent.socket))
        transport.wait_ready(time.monotonic() + 10)
        self.guest = Guest(transport, WindowsAdapter())
        self.vmdir = VmDir("vmft-grd-rt", root=tmp_path / "state")
        self.spec = parse_spec({}, label="unused")

    def prepare(self, mode: str) -> None:
        """What the simulated guest would answer now, as the shim's answer files."""
        for guard in guards_of(self.plan).guards:
            answer = self.sim.answer(guard, mode)
            (self.answers / f"{guard}-{mode}.out").write_bytes(json.dumps(answer, separators=(",", ":")).encode())

    def runs(self) -> list[str]:
        log = self.answers / "runs.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "powershell.exe"
    shim.write_text(f"#!{sys.executable}\n" + SHIM.read_text())
    shim.chmod(0o755)
    answers = tmp_path / "answers"
    answers.mkdir()
    # qemu-ga runs programs with its own environment: the shim must be on *its* PATH.
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VMFORGE_SHIM_ANSWERS", str(answers))
    agent = HostAgent(tmp_path)
    agent.start()
    try:
        yield Rig(tmp_path, agent)
    finally:
        agent.kill()


def test_enforce_then_check_through_the_real_agent(rig: Rig) -> None:
    rig.prepare("enforce")  # the sim applies the guards while preparing its answers
    rig.sim.watchdog_state = {"alive": True, "valve_tripped": False}  # the user logged on since
    plan = guards_of(rig.plan)
    # The real watchdog script must be what the simulated guest hashes: put the same bytes in.
    rig.sim.files[rig.layout.watchdog_script] = guest_file_bytes(watchdog_script(plan, rig.layout))
    rig.prepare("check")

    enforced = guards.enforce(rig.spec, rig.plan, rig.vmdir, rig.guest, layout=rig.layout)
    assert [r.guard for r in enforced.results] == list(plan.guards)
    assert len(next(r for r in enforced.results if r.guard == "policies").changed) == 5

    root = Path(rig.layout.root)
    # Every file went through guest-file-write and was verified by the far side's hash.
    assert (root / "watchdog.ps1").read_bytes() == guest_file_bytes(watchdog_script(plan, rig.layout))
    for guard in plan.guards:
        script = (root / f"{guard}-enforce.ps1").read_bytes()
        assert script == guest_file_bytes(guard_script(guard, plan, "enforce", rig.layout))
    assert (root / "display-session.ps1").read_bytes().startswith(b"\xef\xbb\xbf# vmforge: the user-session half")

    checked = guards.check(rig.spec, rig.plan, rig.vmdir, rig.guest, layout=rig.layout)
    assert checked.ok, [r.summary for r in checked.results if not r.ok]
    assert [line.split()[:2] for line in rig.runs()] == [
        *([g, "enforce"] for g in plan.guards),
        *([g, "check"] for g in plan.guards),
    ]


def test_bad_answers_through_the_real_agent_are_unverified_and_saved(rig: Rig) -> None:
    rig.prepare("check")
    (rig.answers / "policies-check.out").write_bytes(b"")
    (rig.answers / "policies-check.err").write_bytes(b"powershell.exe : The term 'Get-PnpDevice' is not recognized\r\n")
    (rig.answers / "policies-check.rc").write_text("1")
    (rig.answers / "idd-desktop-check.out").write_bytes(
        b'{"vmforge_guard": 1, "guard": "idd-desktop", "mode": "check", "found": {'
    )
    report = guards.check(rig.spec, rig.plan, rig.vmdir, rig.guest, layout=rig.layout)
    policies, idd = report.results[0], report.results[1]
    assert (policies.status, idd.status) == (Status.UNVERIFIED, Status.UNVERIFIED)
    assert "empty output; exit 1" in policies.summary
    saved = Path(policies.raw_output or "").read_bytes()
    assert b"exit code 1\n" in saved and b"'Get-PnpDevice' is not recognized" in saved
    assert b'"found": {' in Path(idd.raw_output or "").read_bytes()


def test_a_large_answer_survives_the_agent(rig: Rig) -> None:
    rig.prepare("check")
    answer = rig.sim.answer("idd-desktop", "check")
    answer["facts"]["targets"] = [
        {"target_id": n, "name": f"Monitor {n} \u00e9\u00e8", "adapter_path": "\\\\?\\PCI#VEN_10DE" * 8}
        for n in range(5000)
    ]
    body = json.dumps(answer).encode()
    assert len(body) > 1_000_000
    (rig.answers / "idd-desktop-check.out").write_bytes(b"WARNING: progress noise\r\n" + body)
    report = guards.check(rig.spec, rig.plan, rig.vmdir, rig.guest, layout=rig.layout)
    idd = report.results[1]
    assert len(idd.facts["targets"]) == 5000 and idd.facts["targets"][7]["name"] == "Monitor 7 \u00e9\u00e8"


def test_cli_check_exits_3_with_the_report(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    from vmforge.cli import guards_cmd, main

    rig.prepare("check")  # a fresh guest: everything missing or drifted
    monkeypatch.setenv("VMFORGE_STATE_DIR", str(tmp_path / "cli-state"))
    monkeypatch.setattr(guards_cmd, "_guest", lambda spec, vmdir, uri: rig.guest)
    monkeypatch.setattr(guards_cmd.guards_lib, "check", _with_layout(guards.check, rig.layout))
    spec_file = tmp_path / "vmforge.toml"
    spec_file.write_text(
        '[windows]\nfamily = "11"\nedition = "Windows 11 Enterprise"\nadmin_user = "vmforge"\n'
        '[guards]\nprofile = "compositor"\n'
    )
    with pytest.raises(SystemExit) as exited:
        main(["guards", "check", "vmft-grd-cli", "--spec", str(spec_file), "--json"])
    assert exited.value.code == 3
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["exit_code"] == 3
    report = document["error"]["report"]
    assert report["vm"] == "vmft-grd-cli" and report["ok"] is False
    assert {g["guard"]: g["status"] for g in report["guards"]} == {
        "policies": "missing",
        "idd-desktop": "drifted",
        "specialized-panel": "drifted",
        "topology-watchdog": "missing",
    }


def _with_layout(func: Any, layout: GuestLayout) -> Any:
    return lambda spec, plan, vmdir, guest, **kw: func(spec, plan, vmdir, guest, layout=layout, **kw)
