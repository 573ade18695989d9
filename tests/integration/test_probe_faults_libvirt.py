"""A probe VM of its own under the real libvirtd (TCG) for what disturbs a guest: reboot
detection by boot identity through ``qemuAgentCommand``, a guest command in flight while
libvirtd restarts, and the ACPI power button.

The VM is booted once per module the way a user would: a vmforge VM's state folder as
``vmforge create`` records it (its spec in state.json), then ``vmforge probe NAME --keep``
(the real CLI), which boots ``NAME-probe`` from vmforge's own domain XML and leaves it running.
The tests run in file order (the shutdown tests last: they switch the VM off); the module's
teardown removes the probe domain with the domains module's destroy logic and checks it is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from libvirtd_control import restart_libvirtd
from pools import qemu_reachable_folder
from probe_vm import MACHINE_CACHE

from tests.conftest import REPO
from vmforge.domain.destroy import destroy_vm
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.session import Guest
from vmforge.guest.transport import Completed
from vmforge.libvirt_conn import connect
from vmforge.spec import parse_spec
from vmforge.state import VmDir, VmState

pytestmark = [pytest.mark.integration, pytest.mark.slow]
URI = "qemu:///system"
PREFIX = "vmft-s2p-"
POOL = PREFIX + "pool"


@dataclass
class Kept:
    name: str  # the vmforge VM (state folder only)
    probe: str  # its probe domain, left running by --keep
    report: dict[str, Any]
    state: Path

    def transport(self) -> AgentTransport:
        return AgentTransport(LibvirtAgentChannel(lambda: connect(URI), self.probe), command_timeout=20)


@pytest.fixture(scope="module")
def places() -> Iterator[tuple[Path, Path]]:
    """Pool folder (QEMU runs as libvirt-qemu: not below pytest's 0700 tmp) and state folder."""
    with qemu_reachable_folder(f"{PREFIX}faults", POOL) as base:
        yield base / "pool", base / "state"


@pytest.fixture(scope="module")
def kept(places: tuple[Path, Path]) -> Iterator[Kept]:
    pool_dir, state = places
    name = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    spec = parse_spec(
        {
            "os": "probe",
            "vm": {"name": name, "virt_type": "qemu", "memory": "512MiB", "vcpus": 1},
            "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir)},
            "network": {"type": "none"},
            "display": {"vnc": False},
        },
        label="test",
    )
    VmDir(name, root=state).save(VmState(name=name, extra={"spec": spec.to_data()}))  # as create records it
    probe = f"{name}-probe"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "XDG_CACHE_HOME": str(MACHINE_CACHE.parent),  # the machine's probe image cache
        "VMFORGE_STATE_DIR": str(state),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vmforge", "probe", name, "--keep", "--json"],
            capture_output=True, text=True, env=env, timeout=500, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        yield Kept(name, probe, json.loads(proc.stdout), state)
    finally:
        conn = connect(URI)
        try:
            destroy_vm(conn, probe, VmDir(probe, root=state))
            assert probe not in [d.name() for d in conn.listAllDomains(0)]
        finally:
            conn.close()


def test_probe_name_boots_the_vms_recorded_spec(kept: Kept) -> None:
    report = kept.report
    assert report["ok"] and report["name"] == kept.probe and report["removed"] is False, report
    assert report["guest"]["cpus"] == 1 and report["guest"]["disks"] == {"vda": 64 * 1024**2}
    os.write(2, f"\nvmforge probe NAME: boot-to-agent {report['boot_to_agent_s']:.1f}s (TCG)\n".encode())


def test_reboot_is_detected_by_boot_identity_through_libvirt(kept: Kept) -> None:
    transport = kept.transport()
    transport.wait_ready(time.monotonic() + 120)
    guest = Guest(transport)
    assert guest.adapter.family == "linux"
    before = guest.boot_id()
    started = time.monotonic()
    after = guest.reboot(time.monotonic() + 300)  # the Linux adapter's reboot command, then wait
    assert after != before
    assert uuid.UUID(after) and uuid.UUID(before)  # /proc/sys/kernel/random/boot_id
    assert guest.boot_id() == after  # stable within the new boot
    conn = connect(URI)
    try:
        assert conn.lookupByName(kept.probe).isActive()  # a guest reboot, not a new domain start
    finally:
        conn.close()
    os.write(2, f"\nprobe reboot detected by boot_id after {time.monotonic() - started:.1f}s\n".encode())


def test_a_guest_command_in_flight_survives_a_libvirtd_restart(kept: Kept) -> None:
    transport = kept.transport()
    transport.wait_ready(time.monotonic() + 120)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = transport.run(["sh", "-c", "sleep 15; echo survived"], timeout=240)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="guest-command", daemon=True)
    worker.start()
    time.sleep(2)  # guest-exec has been answered; the transport polls guest-exec-status
    assert worker.is_alive(), outcome
    restart_libvirtd(URI)
    worker.join(timeout=260)
    assert not worker.is_alive(), "the guest command never returned"
    assert "error" not in outcome, outcome["error"]
    assert outcome["result"] == Completed(0, b"survived\n", b"")
    # A fresh wait after the restart: libvirt reconnected to the agent.
    fresh = kept.transport()
    fresh.wait_ready(time.monotonic() + 120)
    assert fresh.run(["true"], timeout=60).rc == 0


def test_acpi_power_button_powers_the_probe_off(kept: Kept) -> None:
    transport = kept.transport()
    transport.wait_ready(time.monotonic() + 120)
    assert transport.run(["pidof", "acpid"], timeout=60).rc == 0  # started by init (respawn)
    conn = connect(URI)
    try:
        dom = conn.lookupByName(kept.probe)
        started = time.monotonic()
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        while dom.isActive() and time.monotonic() - started < 150:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        state, reason = dom.state()
        assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN), elapsed
    finally:
        conn.close()
    # spec timeouts.shutdown defaults to 5 minutes: the guest powered itself off long before.
    assert elapsed < 150
    os.write(2, f"\nprobe powered off {elapsed:.1f}s after the ACPI power button\n".encode())


def test_vmforge_stop_shuts_the_probe_down_cleanly(kept: Kept, vmforge: Any) -> None:
    """'vmforge stop' asks the agent first (qemu-ga's guest-shutdown runs the probe's
    /sbin/shutdown), then the ACPI button; either way the guest must go down by itself."""
    conn = connect(URI)
    try:
        dom = conn.lookupByName(kept.probe)
        if not dom.isActive():  # switched off by the power-button test
            dom.create()
    finally:
        conn.close()
    kept.transport().wait_ready(time.monotonic() + 240)
    started = time.monotonic()
    result = vmforge("stop", kept.probe, "--connect", URI, "--timeout", "150", timeout=240)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"{kept.probe} stopped (shutdown)", (result.stdout, elapsed)
    os.write(2, f"\nvmforge stop: probe shut down cleanly in {elapsed:.1f}s\n".encode())
