"""The SSH transport against a real OpenSSH server (Debian's sshd on 127.0.0.1, its own config
and host keys in tmp_path), with the Linux adapter: exec, SFTP copies verified by hash in the
guest, host-key pinning on first use and refusal of a changed key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmforge.guest.remote_access import PIN_SSH, get_pin, set_pin, ssh_key
from vmforge.guest.session import Guest
from vmforge.guest.ssh import HostKeyChanged, SshAuthError, SshEndpoint, SshTransport
from vmforge.guest.transport import CopyVerificationFailed, GuestCommandError, GuestTimeout, GuestUnreachable
from vmforge.state import VmDir

pytestmark = pytest.mark.integration

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sshd:
    port: int
    host_key_file: Path
    authorized_keys: Path
    process: subprocess.Popen[bytes]


def start_sshd(folder: Path, public_key: str, host_key_type: str = "ed25519") -> Sshd:
    assert Path(SSHD).exists(), "openssh-server is required (scripts/setup-host installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    host_key = folder / f"host_{host_key_type}"
    subprocess.run(["ssh-keygen", "-q", "-t", host_key_type, "-N", "", "-f", str(host_key)], check=True)
    authorized = folder / "authorized_keys"
    authorized.write_text(public_key + "\n")
    authorized.chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"Subsystem sftp {SFTP_SERVER}\nLogLevel ERROR\n"
    )
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Sshd(port, host_key, authorized, process)
        except OSError:
            if process.poll() is not None:
                detail = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"sshd exited: {detail}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("sshd did not start listening within 10s")


def stop_sshd(server: Sshd) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def vmdir(tmp_path: Path) -> VmDir:
    return VmDir("vmft-winrm-ssh", root=tmp_path / "state")


@pytest.fixture
def sshd(tmp_path: Path, vmdir: VmDir) -> Iterator[Sshd]:
    _, public = ssh_key(vmdir)
    server = start_sshd(tmp_path / "sshd", public)
    try:
        yield server
    finally:
        stop_sshd(server)


def transport_for(vmdir: VmDir, port: int, **kwargs: object) -> SshTransport:
    private, _ = ssh_key(vmdir)
    endpoint = SshEndpoint("127.0.0.1", port, "root", private, get_pin(vmdir, PIN_SSH), vm=vmdir.name)
    return SshTransport(endpoint, on_first_key=lambda line: set_pin(vmdir, PIN_SSH, line), **kwargs)  # type: ignore[arg-type]


def test_exec_stdin_exit_codes_and_os_info(sshd: Sshd, vmdir: VmDir) -> None:
    transport = transport_for(vmdir, sshd.port)
    try:
        transport.wait_ready(time.monotonic() + 20)
        result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=20)
        assert (result.rc, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        quoted = transport.run(["printf", "%s|", "a b", "it's", "$HOME"], timeout=20)
        assert quoted.stdout == b"a b|it's|$HOME|"
        data = os.urandom(3 * 1024 * 1024)
        echoed = transport.run(["cat"], stdin=data, timeout=60)
        assert echoed.stdout == data
        info = transport.os_info()
        assert info.family == "linux" and info.kernel_release == os.uname().release
    finally:
        transport.close()


def test_sftp_copies_verified_by_guest_hash(sshd: Sshd, vmdir: VmDir, tmp_path: Path) -> None:
    transport = transport_for(vmdir, sshd.port)
    guest = Guest(transport)
    remote_dir = tmp_path / "guest-side"
    remote_dir.mkdir()
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 17))
    try:
        digest = guest.copy_in(source, str(remote_dir / "payload.bin"))
        assert (remote_dir / "payload.bin").read_bytes() == source.read_bytes()
        assert not (remote_dir / "payload.bin.vmforge-part").exists()
        back = tmp_path / "back.bin"
        assert guest.copy_out(str(remote_dir / "payload.bin"), back) == digest
        assert back.read_bytes() == source.read_bytes()
        with pytest.raises(GuestCommandError, match=r"does not exist|hashing"):
            transport.get_file(str(remote_dir / "missing"), tmp_path / "x")
    finally:
        transport.close()


def test_copy_damaged_in_guest_is_detected(sshd: Sshd, vmdir: VmDir, tmp_path: Path) -> None:
    """The hash check is the guest's own: a file changed between copy and hash is caught."""
    transport = transport_for(vmdir, sshd.port)
    source = tmp_path / "a.bin"
    source.write_bytes(b"original")
    target = tmp_path / "guest-a.bin"
    original_hash = transport._guest_hash

    def tamper_then_hash(remote: str) -> str:
        Path(remote).write_bytes(b"tampered")
        return original_hash(remote)

    transport._guest_hash = tamper_then_hash  # type: ignore[method-assign]
    try:
        with pytest.raises(CopyVerificationFailed, match="hashes to"):
            transport.put_file(source, str(target))
    finally:
        transport.close()


def test_host_key_pinned_on_first_use_and_change_refused(tmp_path: Path, vmdir: VmDir) -> None:
    _, public = ssh_key(vmdir)
    first = start_sshd(tmp_path / "one", public)
    try:
        transport = transport_for(vmdir, first.port)
        assert transport.run(["true"], timeout=20).rc == 0
        transport.close()
        pinned = get_pin(vmdir, PIN_SSH)
        assert pinned is not None and pinned.startswith("ssh-ed25519 ")
        assert pinned.split()[1] in (first.host_key_file.with_suffix(".pub")).read_text()
        again = transport_for(vmdir, first.port)  # same key: accepted with the pin
        assert again.run(["true"], timeout=20).rc == 0
        again.close()
        port = first.port
    finally:
        stop_sshd(first)
    # A new server (new host key) at the same address: refused before authenticating.
    shutil.rmtree(tmp_path / "one")
    second = start_sshd(tmp_path / "two", public)
    try:
        changed = transport_for(vmdir, second.port)
        with pytest.raises(HostKeyChanged) as info:
            changed.run(["true"], timeout=20)
        assert "vmforge remote pin vmft-winrm-ssh --channel ssh --reset" in (info.value.hint or "")
        assert get_pin(vmdir, PIN_SSH) == pinned  # the pin is not silently replaced
        with pytest.raises(HostKeyChanged):
            changed.wait_ready(time.monotonic() + 5)  # waiting does not help either
    finally:
        stop_sshd(second)
    assert port  # used above


def test_wrong_key_and_unreachable_and_timeout(sshd: Sshd, vmdir: VmDir, tmp_path: Path) -> None:
    other = VmDir("vmft-winrm-other", root=tmp_path / "state")
    stranger = transport_for(other, sshd.port)
    with pytest.raises(SshAuthError, match="refused the VM's key"):
        stranger.run(["true"], timeout=10)
    closed = transport_for(vmdir, _free_port(), connect_timeout=2)
    with pytest.raises(GuestUnreachable, match="cannot connect"):
        closed.run(["true"], timeout=5)
    with pytest.raises(GuestTimeout):
        closed.wait_ready(time.monotonic() + 1.0)
    slow = transport_for(vmdir, sshd.port)
    started = time.monotonic()
    with pytest.raises(GuestTimeout, match="did not finish within 1s"):
        slow.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 10
    slow.close()
