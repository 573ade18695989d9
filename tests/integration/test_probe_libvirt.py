"""The probe under the real libvirtd (TCG), booted from vmforge's OWN domain XML.

One probe VM is booted per module (``running``) through the same path ``vmforge probe`` takes
(the plan transform, vmforge's domain builder with direct kernel boot, ``provision``, the
domains module's destroy) with a 3840x2160 ivshmem-plain device and a real answer ISO written
by ``vmforge.media``.  The tests share it: agent exec, file round trip, the guest CLI, the
console's phase markers, the answer media as the guest kernel mounted it, and the ivshmem
channel check across the VM boundary.  ``vmforge probe`` itself runs once more end to end (CLI,
JSON report, cleanup), and once failing (cleanup on failure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from pools import qemu_reachable_folder
from probe_vm import MACHINE_CACHE, probe_image  # noqa: F401 - fixture

from tests.conftest import REPO
from vmforge.domain.build import build_domain
from vmforge.domain.shapes import Shape
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.console import ConsoleFollower, follow_console
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestCommandError, GuestTimeout
from vmforge.host.facts import read_host_facts
from vmforge.libvirt_conn import connect
from vmforge.media.answer_iso import write_answer_iso
from vmforge.plan import Plan, resolve_plan
from vmforge.probe.image import PEER_PATH, ProbeImage
from vmforge.probe.report import IVSHMEM_ID
from vmforge.probe.run import Timeouts, _guest_facts, probe_domain, run_probe, stage_image
from vmforge.probe.transform import probe_plan
from vmforge.spec import parse_spec
from vmforge.storage import lookup_pool
from vmforge.ui import Reporter

pytestmark = [pytest.mark.integration, pytest.mark.slow]
URI = "qemu:///system"
PREFIX = "vmft-p2-"
POOL = PREFIX + "pool"
ANSWER_FILES = {
    "autounattend.xml": b'<?xml version="1.0"?>\n<unattend xmlns="urn:schemas-microsoft-com:unattend"/>\n',
    "$WinPEDriver$/viostor/w11/amd64/viostor.inf": b"[Version]\nSignature=$Windows NT$\n",
    "vmforge/bootstrap.ps1": b"Write-Output 'vmforge'\n",
}


@dataclass
class Running:
    conn: Any
    dom: Any
    plan: Plan  # the probe plan (after the transform)
    console: ConsoleFollower
    transport: AgentTransport
    boot_to_agent: float


def spec_plan(conn: Any, name: str, pool_dir: Path, state: Path, **extra: Any) -> Plan:
    data: dict[str, Any] = {
        "os": "probe",
        "vm": {"name": name, "virt_type": "qemu", "memory": "512MiB", "vcpus": 1},
        "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir)},
        "network": {"type": "none"},
        "display": {"vnc": False, "resolution": "3840x2160"},
        "ivshmem": {"enabled": True},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    return resolve_plan(
        parse_spec(data, label="test"),
        env={"VMFORGE_STATE_DIR": str(state), "HOME": str(state)},
        host=read_host_facts(conn, URI, "qemu"),
    )


@pytest.fixture(scope="module")
def places() -> Iterator[tuple[Path, Path, Path]]:
    """Stage folder, pool folder (QEMU runs as libvirt-qemu: not below pytest's 0700 tmp) and state."""
    with qemu_reachable_folder(f"{PREFIX}probe", POOL) as base:
        yield base / "stage", base / "pool", base / "state"


@pytest.fixture(scope="module")
def answer_iso(places: tuple[Path, Path, Path]) -> Path:
    path = places[0].parent / "answer.iso"
    write_answer_iso(path, ANSWER_FILES)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def running(probe_image: ProbeImage, places: tuple[Path, Path, Path], answer_iso: Path) -> Iterator[Running]:  # noqa: F811
    stage, pool_dir, state = places
    conn = connect(URI)
    try:
        plan = spec_plan(conn, f"{PREFIX}{uuid.uuid4().hex[:6]}", pool_dir, state)
        pplan = probe_plan(plan, stage_image(probe_image, plan, stage), answer_iso)
        with probe_domain(conn, pplan) as (dom, _vm_dir):
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
            with follow_console(conn, dom) as console:
                started = time.monotonic()
                dom.resume()
                transport = AgentTransport(LibvirtAgentChannel(lambda: connect(URI), pplan.name), command_timeout=20)
                transport.wait_ready(time.monotonic() + 240)
                boot_to_agent = time.monotonic() - started
                os.write(2, f"\nprobe boot-to-agent under libvirtd: {boot_to_agent:.1f}s (TCG)\n".encode())
                yield Running(conn, dom, pplan, console, transport, boot_to_agent)
        assert pplan.name not in [d.name() for d in conn.listAllDomains(0)]  # the destroy logic ran
    finally:
        conn.close()


def test_domain_comes_from_vmforges_builder(running: Running) -> None:
    xml = running.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<kernel>" in xml and "<cmdline>" in xml and "vmforge:owner" in xml
    assert "ivshmem-plain" in xml and "<loader" not in xml


def test_console_phases_and_agent_exec(running: Running, tmp_path: Path) -> None:
    console = running.console
    assert console.wait_for("probe-ready", time.monotonic() + 60) is not None, bytes(console.raw[-2000:])
    phases = [e.phase for e in console.reader.events]
    assert phases[:3] == ["probe-init", "probe-modules", "probe-media"]
    media = next(e for e in console.reader.events if e.phase == "probe-media")
    # The post-install shape's two media drives: the answer ISO, and virtio-win empty (not given).
    assert media.fields == {"cds": "2", "mounted": "1"}

    transport = running.transport
    result = transport.run(["sh", "-c", "echo hello; exit 5"], timeout=30)
    assert (result.rc, result.stdout) == (5, b"hello\n")
    with pytest.raises(GuestCommandError, match="refused guest-file-open"):
        transport.get_file("/no/such/file", tmp_path / "never")
    assert Guest(transport).adapter.family == "linux"
    # The guest's own shell writer, run through qemuAgentCommand, comes back on the console
    # stream and parses with the one parser - a quoted value included.
    boot = console.reader.boot
    assert transport.run(["vmforge-phase", "pe-start", "via=libvirt", "note=two words"], timeout=30).rc == 0
    event = console.wait_for("pe-start", time.monotonic() + 30, after_boot=boot - 1)
    assert event is not None and dict(event.fields) == {"via": "libvirt", "note": "two words"}


def test_answer_media_is_mounted_and_read_by_the_guest_kernel(running: Running, answer_iso: Path) -> None:
    facts = _guest_facts(running.transport, Timeouts())
    assert len(facts.cds) == 1
    (files,) = facts.files.values()
    assert files == {path: len(data) for path, data in ANSWER_FILES.items()}
    (dev,) = facts.cds
    text = running.transport.run(["cat", f"/media/{dev}/autounattend.xml"], timeout=30)
    assert text.stdout == ANSWER_FILES["autounattend.xml"]
    assert facts.device(IVSHMEM_ID) is not None
    assert (facts.cpus, facts.disks) == (1, {"vda": 64 * 1024**2})
    # os = "probe" with a virtio disk: the probe formatted the blank disk and mounted it.
    disk = next(e for e in running.console.reader.events if e.phase == "probe-disk")
    assert dict(disk.fields) == {"dev": "vda", "formatted": "yes", "mounted": "yes"}


def test_guest_cli_exec_cp_wait(running: Running, vmforge: Any, tmp_path: Path) -> None:
    name = running.plan.name
    waited = vmforge("guest", "wait", name, "--connect", URI, "--timeout", "180", "--json")
    assert waited.code == 0, waited.stderr
    assert waited.json()["os"]["id"] == "vmforge-probe"

    ok = vmforge("guest", "exec", name, "--connect", URI, "--", "sh", "-c", "echo out; echo err >&2")
    assert (ok.code, ok.stdout, ok.stderr) == (0, "out\n", "err\n")
    failed = vmforge("guest", "exec", name, "--connect", URI, "--json", "--", "sh", "-c", "exit 9")
    assert failed.code == 1 and failed.json()["rc"] == 9

    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(1024 * 1024 + 3))
    copied_in = vmforge("guest", "cp", str(payload), f"{name}:/tmp/payload.bin", "--connect", URI, "--json")
    assert copied_in.code == 0, copied_in.stderr
    back = tmp_path / "back.bin"
    copied_out = vmforge("guest", "cp", f"{name}:/tmp/payload.bin", str(back), "--connect", URI, "--json")
    assert copied_out.code == 0, copied_out.stderr
    assert copied_in.json()["sha256"] == copied_out.json()["sha256"]
    assert back.read_bytes() == payload.read_bytes()


def test_ivshmem_channel_check_across_the_vm_boundary(running: Running, vmforge: Any) -> None:
    """Host: 'vmforge channel check' on QEMU's backing file.  Guest: the static C peer on BAR2."""
    facts = _guest_facts(running.transport, Timeouts())
    device = facts.device(IVSHMEM_ID)
    assert device is not None
    bar = f"/sys/bus/pci/devices/{device.address}/resource2"
    start = f"{PEER_PATH} {bar} 120 >/tmp/peer-4k.log 2>&1 &"
    assert running.transport.run(["/bin/sh", "-c", start], timeout=30).rc == 0
    ivshmem = running.plan.ivshmem
    assert ivshmem is not None
    t0 = time.monotonic()
    result = vmforge(
        "channel", "check", running.plan.name, "--shm", str(ivshmem.path), "--resolution", "3840x2160",
        "--timeout", "90", "--messages", "64", "--json",
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    log = running.transport.run(["cat", "/tmp/peer-4k.log"], timeout=30).stdout.decode()
    assert result.code == 0, (result.stdout, result.stderr, log)
    data = result.json()
    assert data["ok"] and data["echo"]["ok"] and data["frame"]["crc_ok"] and data["frame"]["pattern_ok"]
    assert data["frame"]["bytes"] == 3840 * 4 * 2160
    assert "attached to session" in log
    os.write(2, f"\nivshmem 4K check across the VM boundary (TCG guest): {elapsed:.1f}s\n".encode())


def test_foreign_domain_is_refused_and_a_paused_guest_times_out(running: Running, vmforge: Any) -> None:
    # The same builder without an owner tag: a domain vmforge did not create.
    name = f"{PREFIX}foreign-{uuid.uuid4().hex[:6]}"
    plan = dataclasses.replace(running.plan, name=name, serial_log=None)
    # No disk, shared memory or CD: nothing shared with the running probe.
    domain = dataclasses.replace(build_domain(plan, Shape.FINAL), disks=(), shmems=())
    dom = running.conn.createXML(domain.to_xml(), libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        result = vmforge("guest", "exec", name, "--connect", URI, "--", "true")
        assert result.code == 1
        assert "vmforge did not create it" in result.stderr
        # Paused: the channel exists but nothing in the guest answers.
        transport = AgentTransport(LibvirtAgentChannel(lambda: connect(URI), name), command_timeout=2)
        with pytest.raises(GuestTimeout) as info:
            transport.wait_ready(time.monotonic() + 5)
        assert f"org.qemu.guest_agent.0 of domain {name}" in info.value.message
    finally:
        dom.destroy()


def test_vmforge_probe_cli_reports_and_removes_the_probe(
    places: tuple[Path, Path, Path], answer_iso: Path, tmp_path: Path
) -> None:
    _stage, pool_dir, _state = places
    name = f"{PREFIX}cli-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "probe.toml"
    spec.write_text(
        f'os = "probe"\n[vm]\nname = "{name}"\nvirt_type = "qemu"\nmemory = "512MiB"\nvcpus = 2\n'
        f'[disk]\nsize = "64MiB"\npool = "{POOL}"\npool_dir = "{pool_dir}"\n'
        '[network]\ntype = "none"\n[display]\nvnc = false\nresolution = "1280x720"\n[ivshmem]\nenabled = true\n'
    )
    # The CLI finds the probe image in the machine's cache (built once per suite, not per test).
    assert MACHINE_CACHE.name == "vmforge", "VMFORGE_TEST_CACHE must end in /vmforge for the CLI test"
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(MACHINE_CACHE.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "vmforge", "probe", "--spec", str(spec), "--answer-iso", str(answer_iso), "--json"],
        capture_output=True, text=True, env=env, timeout=400, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["removed"] and report["name"] == f"{name}-probe"
    assert report["guest"]["cpus"] == 2
    (cd,) = report["guest"]["cds"].values()
    assert set(cd["files"]) == set(ANSWER_FILES)
    assert report["ivshmem"]["ok"] and report["ivshmem"]["frame"]["crc_ok"]
    assert report["ivshmem"]["bar_size"] == 16 * 1024**2  # the 1280x720 auto size
    assert [p["phase"] for p in report["phases"]][:2] == ["probe-init", "probe-modules"]
    conn = connect(URI)
    try:
        assert f"{name}-probe" not in [d.name() for d in conn.listAllDomains(0)]
        pool = lookup_pool(conn, POOL)
        assert pool is not None and f"{name}-probe.qcow2" not in pool.listVolumes()
    finally:
        conn.close()
    assert not Path(f"/dev/shm/vmforge-{name}-probe").exists()


def test_probe_is_removed_when_it_fails(
    probe_image: ProbeImage,  # noqa: F811
    places: tuple[Path, Path, Path],
) -> None:
    stage, pool_dir, state = places
    conn = connect(URI)
    try:
        plan = spec_plan(conn, f"{PREFIX}fail-{uuid.uuid4().hex[:6]}", pool_dir, state)
        # No agent can answer within 0.5 s of power-on: the probe fails mid-boot.
        with pytest.raises(GuestTimeout):
            run_probe(conn, plan, probe_image, reporter=Reporter(), stage_root=stage, timeouts=Timeouts(agent=0.5))
        name = f"{plan.name}-probe"
        assert name not in [d.name() for d in conn.listAllDomains(0)]
        pool = lookup_pool(conn, POOL)
        assert pool is not None and f"{name}.qcow2" not in pool.listVolumes()
        assert not (state / "vms" / name).exists()
        assert not Path(f"/dev/shm/vmforge-{name}").exists()
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByName(f"{plan.name}-probe").destroy()
        conn.close()
