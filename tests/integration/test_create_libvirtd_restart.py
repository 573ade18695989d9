"""Fault injection: libvirtd is restarted while 'vmforge create' waits on the probe guest.

The domain keeps running across the restart (QEMU survives, the new daemon reconnects to it);
create notices that its connection died, reconnects, looks the domain up again and finishes -
with each step recorded once, one domain, one disk and one answer volume - and destroy then
leaves nothing.  Real libvirtd, QEMU (TCG) and probe guest; the restart is the real daemon's
(tests/integration/libvirtd_control.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import libvirt
import pytest
from create_probe import domains, force_cleanup, probe_spec, read_state, start, volumes, wait_until
from libvirtd_control import restart_libvirtd
from probe_vm import probe_image  # noqa: F401 - builds the machine's probe image once

from vmforge.create.steps import STEPS

pytestmark = pytest.mark.integration
NAME = "vmft-s2c-restart"


def test_libvirtd_restart_during_the_phase_wait_create_finishes(
    tmp_path: Path,
    probe_image: Any,  # noqa: F811
) -> None:
    state = tmp_path / "state"
    spec = probe_spec(tmp_path / "probe.toml", NAME)
    conn = libvirt.open("qemu:///system")
    try:
        proc = start(state, "create", "--spec", str(spec), "--json")

        def in_wait() -> bool:
            steps = [s["name"] for s in read_state(state, NAME).get("steps", [])]
            return "start-install" in steps and "setup-phases" not in steps

        wait_until(in_wait, 400, "create waiting in setup-phases", proc)
        assert proc.poll() is None, "create must still be waiting when libvirtd goes away"
        conn.close()
        restart_libvirtd()
        conn = libvirt.open("qemu:///system")

        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:] + out[-2000:]
        assert "lost the libvirt connection" in err and "reconnected to libvirt" in err, err[-3000:]
        result = json.loads(out)
        statuses = {s["name"]: s["status"] for s in result["steps"]}
        assert statuses["setup-phases"] == "done" and statuses["final-shape"] == "done"
        assert [s["name"] for s in read_state(state, NAME)["steps"]] == list(STEPS)  # each once, in order
        assert domains(conn, NAME) == [NAME]
        assert conn.lookupByName(NAME).isActive()
        assert volumes(conn, NAME) == [f"{NAME}-answer.iso", f"{NAME}.qcow2"]
        assert len(list((state / "vms" / NAME / "media").glob("answer-*.iso"))) == 1
    finally:
        force_cleanup(conn, NAME, state)
        assert domains(conn, NAME) == [] and volumes(conn, NAME) == []
        conn.close()
