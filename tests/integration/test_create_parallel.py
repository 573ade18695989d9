"""Concurrency: five 'vmforge create' runs of different probe VMs at once, sharing one state
folder, the storage pool and the probe image stage, all succeed with uncorrupted state; a second
create of a VM whose create is running refuses at once, naming the holder's pid.  One of the five
asks for the optional snapshot (vm.snapshot), so the snapshot step runs on a real probe VM: it is
shut down cleanly (the probe honours ACPI and agent shutdown), its disk frozen under a new overlay, and it is
started again.  Real libvirtd, QEMU (TCG) and probe guests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import libvirt
import pytest
from create_probe import domains, force_cleanup, probe_spec, read_state, run, start, volumes, wait_until
from lxml import etree
from probe_vm import probe_image  # noqa: F401 - builds the machine's probe image once

from vmforge.create.steps import STEPS

pytestmark = pytest.mark.integration
NAMES = [f"vmft-s2c-par{i}" for i in range(5)]
SNAPSHOT = "created"


def test_five_parallel_creates_succeed_and_a_second_create_of_a_busy_vm_refuses(
    tmp_path: Path,
    probe_image: Any,  # noqa: F811
) -> None:
    state = tmp_path / "state"
    specs = {
        name: probe_spec(tmp_path / f"{name}.toml", name, snapshot=SNAPSHOT if i == 0 else None)
        for i, name in enumerate(NAMES)
    }
    conn = libvirt.open("qemu:///system")
    procs = {}
    try:
        for name in NAMES:
            procs[name] = start(state, "create", "--spec", str(specs[name]), "--json")

        # A second create of a VM while its first create holds the lock: refused, not queued.
        busy_name = NAMES[1]
        wait_until(lambda: bool(read_state(state, busy_name).get("steps")), 600, "a step of VM 1", procs[busy_name])
        second = run(state, "create", "--spec", str(specs[busy_name]), "--json", timeout=300)
        assert procs[busy_name].poll() is None, "the first create must still be running for this check"
        assert second.returncode == 1, second.stderr[-2000:]
        error = json.loads(second.stdout)["error"]
        assert error["message"] == (
            f"VM '{busy_name}' is busy: another vmforge command (pid {procs[busy_name].pid}) is working on it"
        )

        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=1800)
            assert proc.returncode == 0, f"{name}: {err[-3000:]}"
            results[name] = json.loads(out)

        uuids = set()
        for name in NAMES:
            recorded = read_state(state, name)
            assert recorded["name"] == name and recorded["plan_hash"] == results[name]["plan_hash"]
            assert [s["name"] for s in recorded["steps"]] == list(STEPS)  # each once, in order
            assert [p["phase"] for p in recorded["extra"]["phases"]][-1] == "probe-ready"
            assert domains(conn, name) == [name]
            dom = conn.lookupByName(name)
            assert dom.isActive()
            uuids.add(dom.UUIDString())
            assert recorded["steps"][STEPS.index("define-install")]["detail"]["uuid"] == dom.UUIDString()
            frozen = [f"{name}.snap-{SNAPSHOT}.qcow2"] if name == NAMES[0] else []
            assert volumes(conn, name) == sorted([f"{name}-answer.iso", f"{name}.qcow2", *frozen])
            assert len(list((state / "vms" / name / "media").glob("answer-*.iso"))) == 1
        assert len(uuids) == len(NAMES)

        # The snapshot step on VM 0.
        name = NAMES[0]
        detail = next(s for s in results[name]["steps"] if s["name"] == "snapshot")["detail"]
        assert detail["label"] == SNAPSHOT and detail["shutdown"] == "shutdown"  # a clean one (acpid/agent)
        assert detail["layer"] == f"{name}.snap-{SNAPSHOT}.qcow2"
        assert detail["nvram_sha256"] is None and detail["tpm_sha256"] is None  # BIOS, no TPM
        extra = read_state(state, name)["extra"]
        assert [s["label"] for s in extra["snapshots"]] == [SNAPSHOT]
        assert extra["known_good_snapshot"] == SNAPSHOT
        pool = conn.storagePoolLookupByName("vmforge")
        overlay = etree.fromstring(pool.storageVolLookupByName(f"{name}.qcow2").XMLDesc(0).encode())
        assert (overlay.findtext("backingStore/path") or "").endswith(f"/{name}.snap-{SNAPSHOT}.qcow2")
        layer = pool.storageVolLookupByName(f"{name}.snap-{SNAPSHOT}.qcow2")
        assert os.stat(layer.path()).st_mode & 0o777 == 0o444  # frozen
        listed = run(state, "snapshot", "list", name, "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["known_good"] == SNAPSHOT
        for other in NAMES[1:]:
            skipped = next(s for s in results[other]["steps"] if s["name"] == "snapshot")["detail"]
            assert skipped == {"skipped": "vm.snapshot is unset (no snapshot asked for)"}

        for name in NAMES:
            gone = run(state, "destroy", name, "--spec", str(specs[name]), "--json")
            assert gone.returncode == 0, gone.stderr
            assert domains(conn, name) == [] and volumes(conn, name) == []
            assert not (state / "vms" / name).exists()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.communicate(timeout=30)
        for name in NAMES:
            force_cleanup(conn, name, state)
        conn.close()
