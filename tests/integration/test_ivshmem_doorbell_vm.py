"""vmforge runs the ivshmem server of a doorbell VM: started before the domain, gone after destroy.

Real libvirtd (qemu:///system, so QEMU runs as libvirt-qemu) and TCG: a probe VM whose
ivshmem-doorbell device comes from vmforge's own domain XML is started through
``vmforge.domain.lifecycle.start``; QEMU must connect to vmforge's server (its join is seen by a
second client), a second start converges on the same server, and ``destroy_vm`` leaves no
shared-memory file, socket or server process.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from create_probe import force_cleanup, probe_spec, read_state, run
from lxml import etree
from pools import remove_pool
from probe_vm import probe_image  # noqa: F401 - fixture

from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.shapes import Shape
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.host.facts import read_host_facts
from vmforge.ivshmem.backing import open_shared_memory
from vmforge.ivshmem.doorbell import IvshmemClient
from vmforge.ivshmem.echo import check_channel
from vmforge.ivshmem.managed import STATE_KEY, release_server
from vmforge.ivshmem.server_daemon import running_server
from vmforge.libvirt_conn import connect
from vmforge.plan import Plan, resolve_plan
from vmforge.probe.image import PEER_PATH, ProbeImage
from vmforge.probe.report import IVSHMEM_ID
from vmforge.probe.run import Timeouts, _guest_facts, stage_image
from vmforge.probe.transform import probe_plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]
URI = "qemu:///system"
PREFIX = "vmft-s2v-"
POOL = PREFIX + "pool"


def doorbell_plan(conn: Any, name: str, pool_dir: Path, state: Path) -> Plan:
    data: dict[str, Any] = {
        "os": "probe",
        "vm": {"name": name, "virt_type": "qemu", "memory": "512MiB", "vcpus": 1},
        "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir)},
        "network": {"type": "none"},
        "display": {"vnc": False, "resolution": "1280x720"},
        "ivshmem": {"enabled": True, "model": "doorbell"},
    }
    return resolve_plan(
        parse_spec(data, label="test"),
        env={"VMFORGE_STATE_DIR": str(state), "HOME": str(state)},
        host=read_host_facts(conn, URI, "qemu"),
    )


@pytest.fixture
def places() -> Iterator[tuple[Path, Path, Path]]:
    """Stage folder, pool folder (QEMU runs as libvirt-qemu: not below pytest's 0700 tmp) and state."""
    base = Path(f"/var/tmp/{PREFIX}{os.getpid()}")
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    try:
        yield base / "stage", base / "pool", base / "state"
    finally:
        conn = connect(URI)
        try:
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(PREFIX):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            remove_pool(conn, POOL)
        finally:
            conn.close()
        state = base / "state" / "vms"
        for vm_root in state.glob("*") if state.is_dir() else []:
            release_server(VmDir(vm_root.name, root=base / "state"))
        for leftover in Path("/dev/shm").glob(f"vmforge-{PREFIX}*"):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(base, ignore_errors=True)


def test_the_server_starts_with_the_domain_and_destroy_removes_it(
    probe_image: ProbeImage,  # noqa: F811
    places: tuple[Path, Path, Path],
) -> None:
    stage, pool_dir, state = places
    conn = connect(URI)
    try:
        plan = doorbell_plan(conn, f"{PREFIX}{uuid.uuid4().hex[:6]}", pool_dir, state)
        pplan = probe_plan(plan, stage_image(probe_image, plan, stage))
        ivshmem = pplan.ivshmem
        assert ivshmem is not None and ivshmem.socket is not None
        assert ivshmem.socket.parent == Path("/run/vmforge")
        vm_dir = VmDir(pplan.name, root=state)
        # provision no longer refuses a doorbell device whose server is not running yet
        dom = provision(conn, pplan, Shape.POST_INSTALL, vm_dir=vm_dir)
        assert not ivshmem.socket.exists()

        start(dom, vm_dir, ivshmem, paused=True)  # QEMU connects at start; no guest needed
        assert dom.isActive()
        handle = running_server(vm_dir)
        assert handle is not None and handle.socket_path == ivshmem.socket
        record = vm_dir.load().extra[STATE_KEY]  # type: ignore[union-attr]
        assert record["pid"] == handle.pid and record["size"] == ivshmem.size == 16 * 1024**2
        # QEMU runs as libvirt-qemu: the socket is root:<QEMU's group> 0660 in a 0755 folder.
        info = ivshmem.socket.stat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == record["group"] == grp.getgrnam("libvirt-qemu").gr_gid
        assert stat.S_IMODE(ivshmem.socket.parent.stat().st_mode) == 0o755

        # QEMU connected to vmforge's server: a second client sees it as a peer with its vector
        # (vmforge's XML: <msi vectors='1'>).
        assert record["vectors"] == 1
        client = IvshmemClient.connect(ivshmem.socket, vectors=1)
        try:
            if not client.peers:
                client.poll_events(timeout=30)
            assert len(client.peers) == 1 and len(next(iter(client.peers.values()))) == 1
        finally:
            client.close()
        assert os.stat(ivshmem.path).st_size == ivshmem.size

        # A re-run converges: a running domain and its server are left as they are.
        start(dom, vm_dir, ivshmem, paused=True)
        assert running_server(vm_dir) == handle

        report = destroy_vm(conn, pplan.name, vm_dir)
        assert "ivshmem server" in report.removed and f"shared memory {ivshmem.path}" in report.removed
        assert not ivshmem.path.exists() and not ivshmem.socket.exists()
        assert not _alive(handle.pid)
        assert pplan.name not in [d.name() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


def test_a_stale_socket_is_replaced_and_the_cli_stops_and_restarts_the_server(
    probe_image: ProbeImage,  # noqa: F811
    places: tuple[Path, Path, Path],
    vmforge: Any,
) -> None:
    stage, pool_dir, state = places
    conn = connect(URI)
    try:
        plan = doorbell_plan(conn, f"{PREFIX}{uuid.uuid4().hex[:6]}", pool_dir, state)
        pplan = probe_plan(plan, stage_image(probe_image, plan, stage))
        ivshmem = pplan.ivshmem
        assert ivshmem is not None and ivshmem.socket is not None
        vm_dir = VmDir(pplan.name, root=state)
        dom = provision(conn, pplan, Shape.POST_INSTALL, vm_dir=vm_dir)
        # A socket file left by a server that died (nobody listens there).
        ivshmem.socket.parent.mkdir(mode=0o755, exist_ok=True)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(ivshmem.socket))
        dead.close()
        start(dom, vm_dir, ivshmem, paused=True)
        first = running_server(vm_dir)
        assert first is not None and dom.isActive()

        env = {"VMFORGE_STATE_DIR": str(state)}
        status = vmforge("status", pplan.name, "--connect", URI, "--json", env=env)
        assert status.code == 0, status.stderr
        assert status.json()["vms"][0]["ivshmem_server"] == {"pid": first.pid, "socket": str(ivshmem.socket)}

        stopped = vmforge("stop", pplan.name, "--force", "--connect", URI, env=env)
        assert stopped.code == 0, stopped.stderr
        assert not dom.isActive() and not ivshmem.socket.exists() and not _alive(first.pid)
        assert STATE_KEY not in vm_dir.load().extra  # type: ignore[union-attr]

        # 'vmforge start' later: the size comes from what the VM's state recorded (here: the
        # spec's plan, as 'vmforge create' records it; the server record went with the stop).
        recorded = vm_dir.load()
        assert recorded is not None
        recorded.extra["plan"] = pplan.to_data()
        vm_dir.save(recorded)
        started = vmforge("start", pplan.name, "--connect", URI, env=env)
        assert started.code == 0, started.stderr
        second = running_server(vm_dir)
        assert second is not None and second.pid != first.pid and dom.isActive()
        assert vm_dir.load().extra[STATE_KEY]["pid"] == second.pid  # type: ignore[union-attr]
        destroy_vm(conn, pplan.name, vm_dir)
        assert not ivshmem.socket.exists() and not _alive(second.pid) and not ivshmem.path.exists()
    finally:
        conn.close()


ROUNDS = 5
ECHOES = 16


def test_doorbell_interrupts_wake_the_guest_and_the_guest_rings_the_host(
    probe_image: ProbeImage,  # noqa: F811
    places: tuple[Path, Path, Path],
) -> None:
    """Host -> guest: a write to QEMU's eventfd from vmforge's server becomes an MSI-X interrupt
    that wakes the C peer blocked in poll() on its VFIO eventfd.  Guest -> host: the peer's write
    to the Doorbell register lands on the host client's eventfd.  The guest needs an IOMMU for
    VFIO (the Debian kernel lacks CONFIG_VFIO_NOIOMMU), so this test adds QEMU's intel-iommu and
    intel_iommu=on to vmforge's domain XML - the only change to it."""
    stage, pool_dir, state = places
    conn = connect(URI)
    try:
        plan = doorbell_plan(conn, f"{PREFIX}{uuid.uuid4().hex[:6]}", pool_dir, state)
        pplan = probe_plan(plan, stage_image(probe_image, plan, stage))
        ivshmem = pplan.ivshmem
        assert ivshmem is not None and ivshmem.socket is not None
        vm_dir = VmDir(pplan.name, root=state)
        dom = provision(conn, pplan, Shape.POST_INSTALL, vm_dir=vm_dir)
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        etree.SubElement(root.find("devices"), "iommu", model="intel")  # type: ignore[arg-type]
        cmdline = root.find("os/cmdline")
        assert cmdline is not None
        cmdline.text = f"{cmdline.text} intel_iommu=on"
        dom = conn.defineXML(etree.tostring(root, encoding="unicode"))
        start(dom, vm_dir, ivshmem)
        transport = AgentTransport(LibvirtAgentChannel(lambda: connect(URI), pplan.name), command_timeout=30)
        transport.wait_ready(time.monotonic() + 300)
        device = _guest_facts(transport, Timeouts()).device(IVSHMEM_ID)
        assert device is not None

        client = IvshmemClient.connect(ivshmem.socket, vectors=1)
        try:
            if not client.peers:
                client.poll_events(timeout=30)
            (guest_id,) = client.peers
            bell = client.doorbell(guest_id)
            start_peer = f"{PEER_PATH} --doorbell {device.address} {client.peer_id} {ROUNDS} 120 >/tmp/bell.log 2>&1 &"
            assert transport.run(["/bin/sh", "-c", start_peer], timeout=30).rc == 0
            log = _wait_for_log(transport, "doorbell ready", 120)
            assert f"own peer id {guest_id}," in log, log
            # Control: the guest rings only when woken, and nothing woke it yet.
            assert not bell.wait(2.0), log
            trips = []
            for _ in range(ROUNDS):
                began = time.monotonic()
                bell.ring()
                assert bell.wait(120.0), _read_log(transport)
                trips.append(time.monotonic() - began)
            log = _wait_for_log(transport, f"interrupt {ROUNDS} ", 60)
            assert log.count("rang host peer") == ROUNDS and "MSI-X vector 0" in log, log
            trips.sort()
            median = trips[ROUNDS // 2] * 1000
            os.write(2, f"\ndoorbell round trip host -> guest IRQ -> host (TCG): median {median:.1f} ms\n".encode())

            # The channel itself in doorbell mode: the C peer maps BAR2 through VFIO, sleeps on
            # the interrupt when idle and rings the host (id from the header) after each reply;
            # the host rings after each message and blocks on its eventfd instead of polling.
            start_echo = f"{PEER_PATH} --vfio {device.address} 120 >/tmp/echo.log 2>&1 &"
            assert transport.run(["/bin/sh", "-c", start_echo], timeout=30).rc == 0
            rung_before = bell.received
            with open_shared_memory(ivshmem.path) as shm:
                report = check_channel(
                    shm, pplan.display_width, pplan.display_height, peer_timeout=120.0, echo_count=ECHOES,
                    bye=True, doorbell=bell,
                )  # fmt: skip
            echo_log = _wait_for_log(transport, "doorbell interrupts", 60, "/tmp/echo.log")
            assert report.ok and report.frame_crc_ok and report.frame_pattern_ok, (report, echo_log)
            woken = int(echo_log.split("woken by ")[1].split()[0])
            # every message from the host rang the guest; every reply rang the host
            assert woken >= 1 and bell.received - rung_before >= ECHOES, (woken, bell.received, echo_log)
            rings = bell.received - rung_before
            os.write(2, f"doorbell-mode check: guest woken by {woken} interrupts, host by {rings} rings\n".encode())
        finally:
            client.close()
        destroy_vm(conn, pplan.name, vm_dir)
        assert not ivshmem.socket.exists() and not ivshmem.path.exists()
    finally:
        conn.close()


def _read_log(transport: AgentTransport, path: str = "/tmp/bell.log") -> str:
    return transport.run(["cat", path], timeout=30).stdout.decode("utf-8", "replace")


def _wait_for_log(transport: AgentTransport, text: str, timeout: float, path: str = "/tmp/bell.log") -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = _read_log(transport, path)
        if text in log:
            return log
        assert time.monotonic() < deadline, f"no {text!r} in the peer's log within {timeout:g}s:\n{log}"
        time.sleep(1.0)


def _alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return text.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_vmforge_create_runs_the_server_and_destroy_removes_it(
    probe_image: ProbeImage,  # noqa: F811 - the machine's probe image, built once
    tmp_path: Path,
) -> None:
    """The real CLI end to end: 'vmforge create' on a doorbell spec starts vmforge's server
    before the domain (no hand-started server), 'vmforge destroy' leaves nothing behind."""
    name = f"{PREFIX}cr-{uuid.uuid4().hex[:6]}"
    state = tmp_path / "state"
    spec = probe_spec(tmp_path / "probe.toml", name)
    with spec.open("a") as out:
        out.write('[display]\nresolution = "640x480"\n[ivshmem]\nenabled = true\nmodel = "doorbell"\n')
    conn = connect(URI)
    try:
        created = run(state, "create", "--spec", str(spec), "--json")
        assert created.returncode == 0, created.stderr[-3000:]
        record = read_state(state, name)["extra"][STATE_KEY]
        socket_path, shm = Path(record["socket"]), Path(record["shm"])
        assert socket_path == Path(f"/run/vmforge/vmforge-{name}.sock") and shm.stat().st_size == record["size"]
        handle = running_server(VmDir(name, root=state))
        assert handle is not None and handle.pid == record["pid"]
        client = IvshmemClient.connect(socket_path, vectors=1)
        try:
            if not client.peers:
                client.poll_events(timeout=30)
            assert len(client.peers) == 1  # the VM's QEMU
        finally:
            client.close()

        destroyed = run(state, "destroy", name, "--connect", URI, "--json", timeout=120)
        assert destroyed.returncode == 0, destroyed.stderr
        assert "ivshmem server" in json.loads(destroyed.stdout)["removed"]
        assert not socket_path.exists() and not shm.exists() and not _alive(handle.pid)
        assert name not in [d.name() for d in conn.listAllDomains(0)]
    finally:
        force_cleanup(conn, name, state)
        conn.close()
