"""'vmforge create' end to end on the probe guest: one VM shared by the module's tests, created
once, then status, stop/start, a no-op re-run, the lock, a plan change, destroy - with the
state file and libvirt checked after each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from create_probe import domains, force_cleanup, probe_spec, read_state, run, volumes
from lxml import etree
from probe_vm import probe_image  # noqa: F401 - builds the machine's probe image once

from tests.packages_support import write_shell_app
from vmforge.create.steps import STEPS
from vmforge.state import VmDir

pytestmark = pytest.mark.integration
NAME = "vmft-cr-probe"
WINDOWS_ONLY = {"define-post-install", "start-post-install", "postinstall", "guards", "rotate-password"}


class Created:
    def __init__(self, state: Path, spec: Path, conn: Any, result: dict[str, Any]) -> None:
        self.state = state
        self.spec = spec
        self.conn = conn
        self.result = result


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory, probe_image: Any) -> Iterator[Created]:  # noqa: F811
    base = tmp_path_factory.mktemp("create")
    state = base / "state"
    package = write_shell_app(base / "shellapp", Path("/tmp/vmft-cr-pkg"))  # a Linux app package
    spec = probe_spec(base / "probe.toml", NAME, package=package)
    conn = libvirt.open("qemu:///system")
    try:
        done = run(state, "create", "--spec", str(spec), "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        yield Created(state, spec, conn, json.loads(done.stdout))
    finally:
        force_cleanup(conn, NAME, state)
        conn.close()


def test_create_runs_every_step_and_leaves_the_final_shape(created: Created) -> None:
    result = created.result
    assert result["schema"] == "vmforge.create/1"
    statuses = {s["name"]: s["status"] for s in result["steps"]}
    assert list(statuses) == list(STEPS)
    assert {n for n, s in statuses.items() if s == "skipped"} == WINDOWS_ONLY | {"snapshot"}
    assert all(statuses[n] == "done" for n in STEPS if n not in WINDOWS_ONLY | {"snapshot"})
    packages = next(s for s in result["steps"] if s["name"] == "packages")["detail"]["packages"]
    assert packages == [{"name": "shellapp", "action": "installed", "version": "1"}]
    assert [p["phase"] for p in result["phases"]][-1] == "probe-ready"
    recorded = read_state(created.state, NAME)
    assert [s["name"] for s in recorded["steps"]] == list(STEPS)
    assert recorded["plan_hash"] == result["plan_hash"]
    dom = created.conn.lookupByName(NAME)
    assert dom.isActive()
    config = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<on_reboot>restart</on_reboot>" in config and "device='cdrom'" not in config  # final shape
    live = etree.fromstring(dom.XMLDesc(0).encode())
    loaded = [s.get("volume") for s in live.findall("devices/disk[@device='cdrom']/source") if s.get("volume")]
    assert loaded == []  # the running guest's trays were emptied
    assert volumes(created.conn, NAME) == [f"{NAME}-answer.iso", f"{NAME}.qcow2"]


def test_status_shows_steps_phase_and_the_agent_channel(created: Created) -> None:
    done = run(created.state, "status", NAME, "--spec", str(created.spec), "--json")
    assert done.returncode == 0, done.stderr
    (vm,) = json.loads(done.stdout)["vms"]
    assert vm["domain_state"] == "running"
    assert vm["phase"] == "probe-ready"
    assert vm["steps"][-1] == {"name": "snapshot", "status": "skipped", "at": vm["steps"][-1]["at"]}
    assert vm["channels"]["org.qemu.guest_agent.0"] == "connected"
    assert vm["vnc"].startswith("127.0.0.1:")
    assert vm["last_failure"] is None


def test_packages_install_cli_on_the_created_vm_changes_nothing(created: Created) -> None:
    """`vmforge packages install` through libvirt's agent channel: create installed it, so the
    CLI verifies it in the guest and reports it as already installed."""
    done = run(created.state, "packages", "install", NAME, "shellapp", "--spec", str(created.spec), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    (outcome,) = json.loads(done.stdout)["packages"]
    assert outcome["name"] == "shellapp" and outcome["action"] == "already installed", outcome
    assert outcome["changed"] == []


def test_stop_and_start(created: Created) -> None:
    # The probe honours the clean request (qemu-ga's guest-shutdown runs its /sbin/shutdown;
    # acpid handles the ACPI button): it goes down by itself, well before --timeout.
    stopped = run(created.state, "stop", NAME, "--spec", str(created.spec), "--timeout", "150")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"{NAME} stopped (shutdown)"
    dom = created.conn.lookupByName(NAME)
    assert not dom.isActive()
    started = run(created.state, "start", NAME, "--spec", str(created.spec))
    assert started.returncode == 0, started.stderr
    assert dom.isActive()


def test_rerun_changes_nothing(created: Created) -> None:
    uuid = created.conn.lookupByName(NAME).UUIDString()
    again = run(created.state, "create", "--spec", str(created.spec), "--json")
    assert again.returncode == 0, again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} <= {"done-earlier", "skipped-earlier"}
    assert created.conn.lookupByName(NAME).UUIDString() == uuid
    assert domains(created.conn, NAME) == [NAME]
    assert volumes(created.conn, NAME) == [f"{NAME}-answer.iso", f"{NAME}.qcow2"]


def test_second_create_of_a_busy_vm_refuses_clearly(created: Created) -> None:
    with VmDir(NAME, root=created.state).lock():
        busy = run(created.state, "create", "--spec", str(created.spec), "--json")
    assert busy.returncode == 1
    assert f"VM '{NAME}' is busy" in json.loads(busy.stdout)["error"]["message"]


def test_plan_change_needs_restart_or_force(created: Created) -> None:
    changed = run(created.state, "create", "--spec", str(created.spec), "--memory", "640MiB", "--json")
    assert changed.returncode == 2, changed.stderr
    error = json.loads(changed.stdout)["error"]
    assert "(memory)" in error["message"] and "define-install" in error["message"]
    assert "--restart" in error["hint"] and "--force" in error["hint"]
    forced = run(created.state, "create", "--spec", str(created.spec), "--memory", "640MiB", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert read_state(created.state, NAME)["plan_hash"] == json.loads(forced.stdout)["plan_hash"]
    statuses = {s["name"]: s["status"] for s in json.loads(forced.stdout)["steps"]}
    assert statuses["define-install"] == "done-earlier"
    assert {n for n, s in statuses.items() if s == "skipped"} == WINDOWS_ONLY | {"snapshot"}  # looked at again


def test_destroy_removes_everything(created: Created) -> None:
    gone = run(created.state, "destroy", NAME, "--spec", str(created.spec), "--json")
    assert gone.returncode == 0, gone.stderr
    assert domains(created.conn, NAME) == []
    assert volumes(created.conn, NAME) == []
    assert not (created.state / "vms" / NAME).exists()
