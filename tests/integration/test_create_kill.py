"""Fault injection: 'vmforge create' killed with SIGKILL at a step boundary and in the middle of
a wait, re-run each time, converges - one domain, one disk and one answer volume, one answer
ISO, each step recorded once - and destroy then leaves no domain, volume, shm file or state."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import libvirt
import pytest
from create_probe import domains, force_cleanup, probe_spec, read_state, run, start, volumes, wait_until
from probe_vm import probe_image  # noqa: F401 - builds the machine's probe image once

from vmforge.create.steps import STEPS

pytestmark = pytest.mark.integration
NAME = "vmft-cr-kill"


def _kill(proc: Any) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _step_names(state: Path) -> list[str]:
    return [s["name"] for s in read_state(state, NAME).get("steps", [])]


def test_sigkill_at_a_step_boundary_and_mid_wait_then_rerun_converges(
    tmp_path: Path,
    probe_image: Any,  # noqa: F811
) -> None:
    state = tmp_path / "state"
    spec = probe_spec(tmp_path / "probe.toml", NAME, ivshmem=True)
    shm = Path("/dev/shm") / f"vmforge-{NAME}"
    conn = libvirt.open("qemu:///system")
    try:
        # 1. Killed right after define-install was recorded (a step boundary).
        first = start(state, "create", "--spec", str(spec))
        wait_until(lambda: "define-install" in _step_names(state), 300, "define-install", first)
        _kill(first)
        assert domains(conn, NAME) == [NAME]
        # The kill lands just after the define-install record (start-install may have followed).
        assert _step_names(state)[-1] in ("define-install", "start-install")

        # 2. Killed while following the phase markers (the guest runs on without vmforge).
        second = start(state, "create", "--spec", str(spec))

        def in_wait() -> bool:
            data = read_state(state, NAME)
            return "setup-phases" not in _step_names(state) and bool(data.get("extra", {}).get("phase"))

        wait_until(in_wait, 400, "a phase marker during setup-phases", second)
        _kill(second)
        assert conn.lookupByName(NAME).isActive()

        # 3. The re-run continues after start-install and finishes.
        third = run(state, "create", "--spec", str(spec), "--json")
        assert third.returncode == 0, third.stderr[-3000:]
        statuses = {s["name"]: s["status"] for s in json.loads(third.stdout)["steps"]}
        assert statuses["define-install"] == "done-earlier"
        assert statuses["setup-phases"] == "done"
        assert _step_names(state) == list(STEPS)  # each step once, in order
        assert domains(conn, NAME) == [NAME]
        assert volumes(conn, NAME) == [f"{NAME}-answer.iso", f"{NAME}.qcow2"]
        assert len(list((state / "vms" / NAME / "media").glob("answer-*.iso"))) == 1
        assert shm.exists()

        gone = run(state, "destroy", NAME, "--spec", str(spec), "--json")
        assert gone.returncode == 0, gone.stderr
        assert f"shared memory {shm}" in json.loads(gone.stdout)["removed"]
        assert domains(conn, NAME) == []
        assert volumes(conn, NAME) == []
        assert not shm.exists()
        assert not (state / "vms" / NAME).exists()
    finally:
        force_cleanup(conn, NAME, state)
        conn.close()
