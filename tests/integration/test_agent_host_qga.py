"""The agent transport against Debian's real qemu-ga running on the host (no VM).

``qemu-ga -m unix-listen`` speaks exactly the protocol the in-guest agent speaks over
virtio-serial: guest-sync-delimited, guest-exec/-status, guest-file-*.  Programs it runs and
files it writes are on the host, which lets the tests check every byte.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import UnixSocketChannel
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestCommandError, GuestError, GuestTimeout, GuestUnreachable

pytestmark = pytest.mark.integration


class HostAgent:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("qemu-ga") or "/usr/sbin/qemu-ga"
        assert Path(binary).exists(), "qemu-ga is missing: install Debian's qemu-guest-agent (scripts/setup-host)"
        self.binary = binary
        self.socket = workdir / "qga.sock"
        self.statedir = workdir / "qga-state"
        self.statedir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "-m", "unix-listen", "-p", str(self.socket), "-t", str(self.statedir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.proc.poll() is None, "qemu-ga exited at start"
            assert time.monotonic() < deadline, "qemu-ga did not create its socket"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def host_agent(tmp_path: Path) -> Iterator[HostAgent]:
    agent = HostAgent(tmp_path)
    agent.start()
    try:
        yield agent
    finally:
        agent.kill()


def transport_for(agent: HostAgent, **kwargs: Any) -> AgentTransport:
    transport = AgentTransport(UnixSocketChannel(agent.socket), **kwargs)
    transport.wait_ready(time.monotonic() + 10)
    return transport


def test_exec_exit_codes_stdout_stderr_and_stdin(host_agent: HostAgent) -> None:
    transport = transport_for(host_agent)
    ok = transport.run(["sh", "-c", "printf out; printf err >&2"], timeout=20)
    assert (ok.rc, ok.stdout, ok.stderr) == (0, b"out", b"err")
    failed = transport.run(["sh", "-c", "echo nope >&2; exit 42"], timeout=20)
    assert (failed.rc, failed.stdout, failed.stderr) == (42, b"", b"nope\n")
    binary = bytes(range(256)) * 10
    echoed = transport.run(["cat"], stdin=binary, timeout=20)
    assert echoed.stdout == binary
    killed = transport.run(["sh", "-c", "kill -9 $$"], timeout=20)
    assert killed.rc == 128 + 9


def test_missing_program_is_a_refusal_not_a_success(host_agent: HostAgent) -> None:
    transport = transport_for(host_agent)
    with pytest.raises(Exception, match="guest-exec") as info:
        transport.run(["/nonexistent/vmforge-probe-binary"], timeout=20)
    assert "refused" in str(info.value)


def test_missing_remote_file_is_refused_and_leaves_nothing(host_agent: HostAgent, tmp_path: Path) -> None:
    transport = transport_for(host_agent)
    with pytest.raises(GuestCommandError, match="refused guest-file-open"):
        transport.get_file(str(tmp_path / "absent"), tmp_path / "local")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qga-state", "qga.sock", "work"]
    with pytest.raises(GuestError, match="cannot write"):
        transport.get_file("/etc/hostname", tmp_path / "no-such-dir" / "x")


def test_large_output_arrives_whole(host_agent: HostAgent) -> None:
    transport = transport_for(host_agent)
    result = transport.run(["seq", "1", "600000"], timeout=60)
    expected = "".join(f"{i}\n" for i in range(1, 600001)).encode()
    assert len(expected) > 4_000_000
    assert result.rc == 0 and result.stdout == expected


def test_exec_timeout_names_the_program(host_agent: HostAgent) -> None:
    transport = transport_for(host_agent)
    with pytest.raises(GuestTimeout, match=r"sleep did not finish within 0\.5s"):
        transport.run(["sleep", "5"], timeout=0.5)


def test_multi_megabyte_round_trip_verified_by_the_guest_hash(host_agent: HostAgent, tmp_path: Path) -> None:
    guest = Guest(transport_for(host_agent, chunk_size=256 * 1024), LinuxAdapter())
    source = tmp_path / "payload.bin"
    source.write_bytes(random.Random(7).randbytes(6 * 1024 * 1024 + 123))
    remote = tmp_path / "in-guest" / "payload.bin"
    remote.parent.mkdir()
    digest = guest.copy_in(source, str(remote))
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert remote.read_bytes() == source.read_bytes()
    back = tmp_path / "back.bin"
    assert guest.copy_out(str(remote), back) == digest
    assert back.read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob(".*vmforge-part"))


def test_agent_not_running_times_out_naming_the_channel(tmp_path: Path) -> None:
    nobody = tmp_path / "nobody.sock"
    # A socket file nobody listens on (what a dead QEMU or qemu-ga leaves behind).
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(nobody))
    stale.close()
    transport = AgentTransport(UnixSocketChannel(nobody))
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info:
        transport.wait_ready(time.monotonic() + 1.5)
    assert 1.4 < time.monotonic() - start < 5
    assert str(nobody) in info.value.message
    assert "did not answer within" in info.value.message
    assert info.value.hint and "qemu-ga" in info.value.hint


def test_agent_that_accepts_but_never_answers_times_out(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    try:
        transport = AgentTransport(UnixSocketChannel(path, sync_timeout=0.3), command_timeout=0.3)
        with pytest.raises(GuestTimeout, match=str(path)):
            transport.wait_ready(time.monotonic() + 1.0)
    finally:
        listener.close()


class KillAfter(UnixSocketChannel):
    """A real socket channel that kills the real agent right after the Nth use of one command."""

    def __init__(self, path: Path, agent: HostAgent, execute: str, after: int) -> None:
        super().__init__(path)
        self.agent, self.execute, self.after, self.seen = agent, execute, after, 0

    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        if execute == self.execute:
            self.seen += 1
            if self.seen == self.after:
                self.agent.kill()
        return super().command(execute, arguments, timeout)


def test_agent_killed_mid_upload_is_never_success(host_agent: HostAgent, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    channel = KillAfter(host_agent.socket, host_agent, "guest-file-write", after=3)
    guest = Guest(AgentTransport(channel, chunk_size=256 * 1024), LinuxAdapter())
    with pytest.raises(GuestUnreachable, match="guest-file-write"):
        guest.copy_in(source, str(tmp_path / "dest.bin"))
    assert (tmp_path / "dest.bin").stat().st_size < source.stat().st_size


def test_agent_killed_mid_download_leaves_no_file(host_agent: HostAgent, tmp_path: Path) -> None:
    remote = tmp_path / "remote.bin"
    remote.write_bytes(os.urandom(3 * 1024 * 1024))
    channel = KillAfter(host_agent.socket, host_agent, "guest-file-read", after=3)
    transport = AgentTransport(channel, chunk_size=256 * 1024)
    local = tmp_path / "local.bin"
    with pytest.raises(GuestUnreachable, match="guest-file-read"):
        transport.get_file(str(remote), local)
    assert not local.exists()
    assert not list(tmp_path.glob(".*vmforge-part"))


def test_reconnect_resyncs_after_the_agent_restarts(host_agent: HostAgent) -> None:
    channel = UnixSocketChannel(host_agent.socket)
    transport = AgentTransport(channel)
    transport.wait_ready(time.monotonic() + 10)
    assert channel.syncs == 1
    host_agent.kill()
    with pytest.raises(GuestUnreachable):
        transport.run(["true"], timeout=5)
    host_agent.start()
    # A previous client left half a command in the agent's parser: the 0xFF of the handshake resets it.
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(host_agent.socket))
    raw.sendall(b'{"execute": "guest-exec", "arguments": {"path": "tr')
    raw.close()
    transport.wait_ready(time.monotonic() + 10)
    assert channel.syncs == 2
    assert transport.run(["sh", "-c", "echo back"], timeout=20).stdout == b"back\n"


def test_os_info_and_boot_id(host_agent: HostAgent) -> None:
    guest = Guest(transport_for(host_agent))
    info = guest.transport.os_info()
    assert info.family == "linux"
    assert info.kernel_release == os.uname().release
    assert isinstance(guest.adapter, LinuxAdapter)
    assert guest.boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
