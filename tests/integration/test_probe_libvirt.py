"""The probe under the real libvirtd: agent via qemuAgentCommand, console stream, the guest CLI.

The domain here comes from a minimal XML written in this test ONLY: vmforge's domain builder
(vmforge/domain/) is being written on another branch and the probe command will boot from it.
Do not copy this XML into vmforge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from probe_vm import probe_image  # noqa: F401 - fixture

from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.console import follow_console
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestCommandError, GuestTimeout
from vmforge.libvirt_conn import connect
from vmforge.ownership import OwnerTag
from vmforge.probe.image import ProbeImage

pytestmark = [pytest.mark.integration, pytest.mark.slow]
URI = "qemu:///system"


def minimal_probe_xml_for_tests(name: str, image_dir: Path, image: ProbeImage, owned: bool = True) -> str:
    owner = OwnerTag(vm=name, spec_hash="test", plan_hash="test", created="2026-01-01T00:00:00Z").to_xml()
    metadata = f"<metadata>{owner}</metadata>" if owned else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  {metadata}
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{image_dir}/vmlinuz</kernel>
    <initrd>{image_dir}/initrd.img</initrd>
    <cmdline>{image.cmdline}</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_reboot>restart</on_reboot>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>"""


class Running:
    def __init__(self, conn: Any, dom: Any, name: str) -> None:
        self.conn, self.dom, self.name = conn, dom, name


@pytest.fixture(scope="module")
def image_dir(probe_image: ProbeImage) -> Iterator[Path]:  # noqa: F811
    # The qemu process runs as libvirt-qemu: it needs a path it may traverse (not /root/.cache).
    folder = Path(tempfile.mkdtemp(prefix="vmft-probe-", dir="/var/tmp"))
    try:
        folder.chmod(0o755)
        for source in (probe_image.kernel, probe_image.initrd):
            shutil.copyfile(source, folder / source.name)
            (folder / source.name).chmod(0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def running(probe_image: ProbeImage, image_dir: Path) -> Iterator[Running]:  # noqa: F811
    conn = connect(URI)
    name = f"vmft-probe-{uuid.uuid4().hex[:8]}"
    dom = conn.createXML(minimal_probe_xml_for_tests(name, image_dir, probe_image), libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        yield Running(conn, dom, name)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        conn.close()


def test_console_phases_and_agent_over_libvirt(running: Running, tmp_path: Path) -> None:
    with follow_console(running.conn, running.dom) as console:
        started = time.monotonic()
        running.dom.resume()
        transport = AgentTransport(LibvirtAgentChannel(lambda: connect(URI), running.name), command_timeout=20)
        transport.wait_ready(time.monotonic() + 180)
        boot_to_agent = time.monotonic() - started
        ready = console.wait_for("probe-ready", time.monotonic() + 60)
        assert ready is not None, (console.error, bytes(console.raw[-2000:]).decode("utf-8", "replace"))
        phases = [e.phase for e in console.reader.events]
        assert phases[:3] == ["probe-init", "probe-modules", "probe-media"]
        os.write(2, f"\nprobe boot-to-agent under libvirtd: {boot_to_agent:.1f}s (TCG)\n".encode())

        result = transport.run(["sh", "-c", "echo hello; exit 5"], timeout=30)
        assert (result.rc, result.stdout) == (5, b"hello\n")
        with pytest.raises(GuestCommandError, match="refused guest-file-open"):
            transport.get_file("/no/such/file", tmp_path / "never")

        guest = Guest(transport)
        assert guest.adapter.family == "linux"
        # The guest's own emitter, run through qemuAgentCommand, comes back on the console stream.
        boot = console.reader.boot
        assert transport.run(["vmforge-phase", "pe-start", "via=libvirt"], timeout=30).rc == 0
        event = console.wait_for("pe-start", time.monotonic() + 30, after_boot=boot - 1)
        assert event is not None and event.fields == {"via": "libvirt"}
        # (Reboot detection is tested on the QEMU-booted probe in test_probe_boot.py.)


def test_guest_cli_exec_cp_wait(running: Running, vmforge: Any, tmp_path: Path) -> None:
    name = running.name
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


def test_guest_cli_refuses_a_foreign_domain(probe_image: ProbeImage, image_dir: Path, vmforge: Any) -> None:  # noqa: F811
    conn = connect(URI)
    name = f"vmft-probe-foreign-{uuid.uuid4().hex[:6]}"
    dom = conn.createXML(
        minimal_probe_xml_for_tests(name, image_dir, probe_image, owned=False), libvirt.VIR_DOMAIN_START_PAUSED
    )
    try:
        result = vmforge("guest", "exec", name, "--connect", URI, "--", "true")
        assert result.code == 1
        assert "vmforge did not create it" in result.stderr
    finally:
        dom.destroy()
        conn.close()


def test_agent_absent_times_out_naming_the_channel(probe_image: ProbeImage, image_dir: Path) -> None:  # noqa: F811
    conn = connect(URI)
    name = f"vmft-probe-mute-{uuid.uuid4().hex[:6]}"
    # Paused: the channel exists but nothing in the guest answers.
    dom = conn.createXML(minimal_probe_xml_for_tests(name, image_dir, probe_image), libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        transport = AgentTransport(LibvirtAgentChannel(lambda: connect(URI), name), command_timeout=2)
        with pytest.raises(GuestTimeout) as info:
            transport.wait_ready(time.monotonic() + 5)
        assert f"org.qemu.guest_agent.0 of domain {name}" in info.value.message
    finally:
        dom.destroy()
        conn.close()
