"""The WinRM transport end to end against the loopback WS-Management test server.

Real: HTTP, TLS with vmforge's certificate and the fingerprint pin, NTLM (pyspnego accepting,
channel binding on HTTPS, message encryption on HTTP), Basic, pywinrm's envelopes, chunked
Send/Receive, hash checks of reassembled files.  *Simulated*: what the commands do in "Windows"
(tests/winrm_server/emulation.py).  With VMFORGE_TEST_WINRM_HOST, _USER and _PASSWORD set
(optionally _CERT_SHA256 for HTTPS with that pin, _PORT) the portable tests also run against a
real Windows host; their "live" variants skip cleanly otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.winrm_server.server import ServerConfig, WinrmTestServer, write_user_file
from vmforge.guest.certs import generate_certificate
from vmforge.guest.session import Guest
from vmforge.guest.transport import GuestCommandError, GuestTimeout, GuestUnreachable
from vmforge.guest.winrm import CMD_LINE_LIMIT, CertificateMismatch, WinrmAuthError, WinrmEndpoint, WinrmTransport
from vmforge.logs import redact

pytestmark = pytest.mark.integration

USER = "vmforge"
PASSWORD = "Test-Pass-4711"
PAIR = generate_certificate("vmft-winrm-guest")
LIVE_VARS = ("VMFORGE_TEST_WINRM_HOST", "VMFORGE_TEST_WINRM_USER", "VMFORGE_TEST_WINRM_PASSWORD")


def live_endpoint() -> WinrmEndpoint | None:
    """A real Windows host from VMFORGE_TEST_WINRM_HOST/_USER/_PASSWORD: HTTPS pinned to
    _CERT_SHA256 when given (port 5986), else HTTP with NTLM sealing (5985); _PORT overrides."""
    host, user, password = (os.environ.get(name, "") for name in LIVE_VARS)
    if not (host and user and password):
        return None
    pin = os.environ.get("VMFORGE_TEST_WINRM_CERT_SHA256", "").replace(":", "").strip().lower() or None
    port = int(os.environ.get("VMFORGE_TEST_WINRM_PORT") or (5986 if pin else 5985))
    return WinrmEndpoint(host, port, "https" if pin else "http", "ntlm", user, password, pin, vm="live")


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ntlm-users"
    write_user_file(path, USER, PASSWORD)
    monkeypatch.setenv("NTLM_USER_FILE", str(path))
    return path


def serve(tmp_path: Path, scheme: str = "https", auth: str = "ntlm", cert=PAIR) -> WinrmTestServer:  # type: ignore[no-untyped-def]
    https = scheme == "https"
    config = ServerConfig(
        USER, PASSWORD, auth=auth, cert_pem=cert.cert_pem if https else None, key_pem=cert.key_pem if https else None
    )
    return WinrmTestServer(config, tmp_path / f"guest-{scheme}-{auth}")


def endpoint(server: WinrmTestServer, scheme: str = "https", auth: str = "ntlm", **changes: str) -> WinrmEndpoint:
    values = {
        "host": "127.0.0.1",
        "port": server.port,
        "scheme": scheme,
        "auth": auth,
        "username": USER,
        "password": PASSWORD,
        "fingerprint": PAIR.fingerprint if scheme == "https" else None,
        "vm": "vmft-winrm-test",
    }
    values.update(changes)
    return WinrmEndpoint(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["https-ntlm", "http-ntlm", "https-basic", "live"])
def channel(
    request: pytest.FixtureRequest, tmp_path: Path, users: Path
) -> Iterator[tuple[WinrmTransport, WinrmTestServer | None]]:
    """A transport plus the simulated guest's server (None when live)."""
    if request.param == "live":
        live = live_endpoint()
        if live is None:
            pytest.skip(f"live WinRM test: set {', '.join(LIVE_VARS)} (and optionally _CERT_SHA256, _PORT)")
        transport = WinrmTransport(live)
        yield transport, None
        transport.close()
        return
    scheme, auth = request.param.split("-")
    with serve(tmp_path, scheme, auth) as server:
        transport = WinrmTransport(endpoint(server, scheme, auth), operation_timeout=5)
        try:
            yield transport, server
        finally:
            transport.close()


def guest_sh(server: WinrmTestServer | None, script: str) -> list[str]:
    if server is None:
        pytest.skip("sh runs only in the simulated guest")
    return ["sh", "-c", script]


def test_run_streams_and_exit_codes(channel: tuple[WinrmTransport, WinrmTestServer | None]) -> None:
    transport, server = channel
    result = transport.run(guest_sh(server, "printf out; printf err >&2; exit 5"), timeout=30)
    assert (result.rc, result.stdout, result.stderr) == (5, b"out", b"err")
    big = transport.run(guest_sh(server, "head -c 3000000 /dev/zero | tr '\\0' 'x'"), timeout=60)
    assert big.stdout == b"x" * 3_000_000  # many Receive responses, each within the envelope
    data = os.urandom(700_000)
    echoed = transport.run(guest_sh(server, "cat"), stdin=data, timeout=60)
    assert echoed.stdout == data  # stdin in several Send messages


def test_powershell_errors_are_readable(channel: tuple[WinrmTransport, WinrmTestServer | None]) -> None:
    transport, _ = channel
    result = Guest(transport).run_script("Get-NoSuchThing -Now", timeout=60)
    assert result.rc != 0
    text = result.stderr.decode()
    assert "Get-NoSuchThing" in text and "CLIXML" not in text and "_x000D_" not in text


def test_copies_are_chunked_and_verified_in_the_guest(
    channel: tuple[WinrmTransport, WinrmTestServer | None], tmp_path: Path
) -> None:
    transport, server = channel
    guest = Guest(transport)
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(5 * transport.chunk_size + 123))  # several Send envelopes
    remote = "C:\\Windows\\Temp\\vmforge\\payload.bin"
    digest = guest.copy_in(source, remote)
    if server is not None:
        assert (
            server.guest.root / "C" / "Windows" / "Temp" / "vmforge" / "payload.bin"
        ).read_bytes() == source.read_bytes()
    back = tmp_path / "back.bin"
    assert guest.copy_out(remote, back) == digest
    assert back.read_bytes() == source.read_bytes()
    with pytest.raises(GuestCommandError, match=r"missing\.bin"):
        transport.get_file("C:\\Windows\\Temp\\vmforge\\missing.bin", tmp_path / "nothing")
    assert not (tmp_path / ".nothing.vmforge-part").exists()


def test_long_script_is_staged_as_a_file(channel: tuple[WinrmTransport, WinrmTestServer | None]) -> None:
    transport, server = channel
    guest = Guest(transport)
    padding = "# " + "x" * 78 + "\n"
    boot_identity = (REPO / "templates" / "guest" / "windows" / "boot-identity.ps1").read_text()
    script = boot_identity.splitlines()[0] + "\n" + padding * 60 + boot_identity
    argv = guest.adapter.script_argv(script)
    assert len(" ".join(argv)) > CMD_LINE_LIMIT
    result = transport.run(argv, timeout=60)
    if server is not None:
        staged = list((server.guest.root / "C" / "Windows" / "Temp" / "vmforge").glob("script-*.ps1"))
        assert len(staged) == 1 and staged[0].read_bytes().startswith(b"\xef\xbb\xbf# vmforge")
        assert any(" -File C:\\Windows\\Temp\\vmforge\\script-" in line for line in server.guest.commands_seen)
        assert max(len(line) for line in server.guest.commands_seen) <= CMD_LINE_LIMIT
    assert result.rc == 0 and b"T" in result.stdout  # the boot-identity script ran from the file


def test_boot_identity_and_os_info(channel: tuple[WinrmTransport, WinrmTestServer | None]) -> None:
    transport, _ = channel
    guest = Guest(transport)
    assert transport.os_info().family == "windows"
    assert guest.adapter.family == "windows"
    assert "T" in guest.boot_id()


# -- faults (simulated server only) -------------------------------------------------------------------


def test_reboot_between_commands_is_detected(tmp_path: Path, users: Path) -> None:
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=5, sleep=lambda s: time.sleep(min(s, 0.2)))
        guest = Guest(transport)
        before = guest.boot_id()
        new = guest.reboot(time.monotonic() + 30)  # reboot.ps1 in the guest, new LastBootUpTime after
        assert new != before and server.guest.boots == 2
        transport.close()


def test_shell_lost_in_a_reboot_is_replaced_transparently(tmp_path: Path, users: Path) -> None:
    """Between two commands the guest rebooted while no request was in flight: the old shell is
    gone (WS-Man fault), the transport opens a new one once and runs the command."""
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=5)
        guest = Guest(transport)
        before = guest.boot_id()
        server.service.reset()
        server.guest.rebooted()
        assert guest.boot_id() != before
        faults = [r for r in server.responses if b"w:InvalidSelectors" in r]
        assert len(faults) == 1
        transport.close()


def test_reboot_during_a_call_is_unreachable_then_wait_ready_recovers(tmp_path: Path, users: Path) -> None:
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=5, open_attempts=1)
        guest = Guest(transport)
        before = guest.boot_id()
        server.reboot(down_for=1.0)
        with pytest.raises(GuestUnreachable):
            guest.boot_id()
        transport.wait_ready(time.monotonic() + 20)
        assert guest.boot_id() != before
        transport.close()


def test_certificate_mismatch_is_refused_with_repin_hint(tmp_path: Path, users: Path) -> None:
    impostor = generate_certificate("vmft-winrm-guest")
    with serve(tmp_path, cert=impostor) as server:
        transport = WinrmTransport(endpoint(server), open_attempts=1)
        with pytest.raises(CertificateMismatch) as info:
            transport.run(["sh", "-c", "true"], timeout=10)
        assert "vmforge remote pin vmft-winrm-test" in (info.value.hint or "")
        assert impostor.fingerprint[:2].upper() in info.value.message
        assert server.requests == []  # nothing, not even credentials, went to the impostor
        with pytest.raises(CertificateMismatch):
            transport.wait_ready(time.monotonic() + 5)  # waiting does not help


def test_wrong_password_is_one_clean_error(tmp_path: Path, users: Path) -> None:
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server, password="Wrong-Pass-0000"), open_attempts=1)
        with pytest.raises(WinrmAuthError) as info:
            transport.run(["sh", "-c", "true"], timeout=10)
        assert "Wrong-Pass" not in info.value.message + (info.value.hint or "")
        assert "Wrong-Pass-0000" not in redact("Wrong-Pass-0000")  # registered as a secret


def test_server_closing_mid_command_is_unreachable_then_reconnects(tmp_path: Path, users: Path) -> None:
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=5)
        assert transport.run(["sh", "-c", "echo first"], timeout=30).stdout == b"first\n"
        server.close_on_next_receive = True
        with pytest.raises(GuestUnreachable, match="cannot reach"):
            transport.run(["sh", "-c", "sleep 0.2; echo lost"], timeout=30)
        assert transport.run(["sh", "-c", "echo again"], timeout=30).stdout == b"again\n"
        transport.close()


def test_operation_timeouts_are_retried_until_the_deadline(tmp_path: Path, users: Path) -> None:
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=1)
        result = transport.run(["sh", "-c", "sleep 2.5; echo late"], timeout=30)
        assert result.stdout == b"late\n"
        faults = [r for r in server.responses if b"w:TimedOut" in r]
        assert len(faults) >= 1  # the server answered OperationTimeout faults; the client asked again
        started = time.monotonic()
        with pytest.raises(GuestTimeout, match="did not finish"):
            transport.run(["sh", "-c", "sleep 30"], timeout=2)
        assert time.monotonic() - started < 8
        transport.close()


def test_unreachable_host_fails_within_bounded_retries(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delays: list[float] = []
    ep = WinrmEndpoint("127.0.0.1", port, "https", "ntlm", USER, PASSWORD, PAIR.fingerprint)
    transport = WinrmTransport(ep, open_attempts=3, connect_timeout=1, sleep=delays.append)
    with pytest.raises(GuestUnreachable, match="cannot reach"):
        transport.run(["sh", "-c", "true"], timeout=10)
    assert len(delays) == 2 and all(0 < d < 10 for d in delays)  # bounded, jittered backoff


def test_password_rotation_goes_over_stdin_and_locks_out_the_old_one(tmp_path: Path, users: Path) -> None:
    from vmforge.credentials import ADMIN_PASSWORD, ADMIN_PASSWORD_NEXT
    from vmforge.guest.remote_access import rotate_admin_password
    from vmforge.spec import parse_spec
    from vmforge.state import VmDir

    spec = parse_spec({"vm": {"name": "vmft-winrm-rotate"}}, label="test")
    vmdir = VmDir("vmft-winrm-rotate", root=tmp_path / "state")
    vmdir.save_secrets({ADMIN_PASSWORD: PASSWORD})
    with serve(tmp_path) as server:
        transport = WinrmTransport(endpoint(server), operation_timeout=5)
        rotate_admin_password(spec, vmdir, transport)
        transport.close()
        secrets = vmdir.load_secrets()
        new = secrets[ADMIN_PASSWORD]
        assert new != PASSWORD and ADMIN_PASSWORD_NEXT not in secrets
        assert not any(new in line for line in server.guest.commands_seen)  # never on a command line
        old = WinrmTransport(endpoint(server), open_attempts=1)
        with pytest.raises(WinrmAuthError):
            old.run(["sh", "-c", "true"], timeout=10)
        fresh = WinrmTransport(endpoint(server, password=new))
        assert fresh.run(["sh", "-c", "echo ok"], timeout=10).stdout == b"ok\n"
        fresh.close()


def test_live_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIVE_VARS:
        monkeypatch.delenv(name, raising=False)
    assert live_endpoint() is None
    monkeypatch.setenv("VMFORGE_TEST_WINRM_HOST", "win.example")
    monkeypatch.setenv("VMFORGE_TEST_WINRM_USER", "admin")
    monkeypatch.setenv("VMFORGE_TEST_WINRM_PASSWORD", "Live-Pass-1")
    plain = live_endpoint()
    assert plain is not None and (plain.scheme, plain.port, plain.fingerprint) == ("http", 5985, None)
    monkeypatch.setenv("VMFORGE_TEST_WINRM_CERT_SHA256", "AB:" * 31 + "CD")
    pinned = live_endpoint()
    assert pinned is not None and (pinned.scheme, pinned.port) == ("https", 5986)
    assert pinned.fingerprint == "ab" * 31 + "cd"
