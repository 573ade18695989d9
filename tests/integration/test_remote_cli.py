"""``vmforge remote`` through the real CLI against the WinRM test server (simulated guest) and
a real sshd: pinning, exec, a refused impostor, and no secret on any output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_transport import start_sshd, stop_sshd
from tests.winrm_server.server import ServerConfig, WinrmTestServer, write_user_file
from vmforge.guest.certs import generate_certificate
from vmforge.guest.remote_access import PIN_SSH, PIN_WINRM, get_pin, ssh_key, winrm_certificate
from vmforge.state import VmDir

pytestmark = pytest.mark.integration

NAME = "vmft-winrm-cli"
PASSWORD = "Cli-Pass-8123"


def write_spec(path: Path, port: int, extra: str = "") -> Path:
    path.write_text(
        f'[vm]\nname = "{NAME}"\n[windows]\npassword = "{PASSWORD}"\n'
        f'[remote]\naddress = "127.0.0.1"\nwinrm_port = {port}\nssh_port = {port}\n{extra}'
    )
    return path


def test_winrm_exec_pin_and_impostor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vmforge: Any) -> None:
    users = tmp_path / "users"
    write_user_file(users, "vmforge", PASSWORD)
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    vmdir = VmDir(NAME)
    own = winrm_certificate(vmdir, NAME)  # made (and pinned) when the answer media is built
    with WinrmTestServer(
        ServerConfig("vmforge", PASSWORD, cert_pem=own.cert_pem, key_pem=own.key_pem), tmp_path / "g"
    ) as server:
        spec = write_spec(tmp_path / "vmforge.toml", server.port)
        ran = vmforge("remote", "exec", NAME, "--spec", str(spec), "--", "sh", "-c", "echo hi; exit 3")
        assert (ran.code, ran.stdout) == (3, "hi\n"), ran.stderr
        pinned = vmforge("remote", "pin", NAME, "--spec", str(spec), "--json")
        assert pinned.code == 0, pinned.stderr
        assert pinned.json()["pinned"] == pinned.json()["presented"] == own.fingerprint
        as_json = vmforge("remote", "exec", NAME, "--spec", str(spec), "--json", "--", "sh", "-c", "printf x")
        assert json.loads(as_json.stdout)["stdout"] == "x"
    impostor = generate_certificate(NAME)
    with WinrmTestServer(
        ServerConfig("vmforge", PASSWORD, cert_pem=impostor.cert_pem, key_pem=impostor.key_pem), tmp_path / "i"
    ) as server:
        spec = write_spec(tmp_path / "vmforge.toml", server.port)
        refused = vmforge("remote", "exec", NAME, "--spec", str(spec), "--", "sh", "-c", "true")
        assert refused.code == 1
        assert "not the one pinned" in refused.stderr and f"vmforge remote pin {NAME}" in refused.stderr
        assert "Traceback" not in refused.stderr and server.requests == []
        shown = vmforge("remote", "pin", NAME, "--spec", str(spec))
        assert shown.code == 0 and "not pinned" in shown.stderr
        assert get_pin(vmdir, PIN_WINRM) == own.fingerprint  # not replaced without --fingerprint
        wrong = vmforge("remote", "pin", NAME, "--spec", str(spec), "--fingerprint", "ab" * 32)
        assert wrong.code == 2 and "nothing was pinned" in wrong.stderr
        repin = vmforge("remote", "pin", NAME, "--spec", str(spec), "--fingerprint", impostor.fingerprint)
        assert repin.code == 0
        assert vmforge("remote", "exec", NAME, "--spec", str(spec), "--", "sh", "-c", "true").code == 0
        for output in (ran, pinned, refused, shown, wrong, repin):
            assert PASSWORD not in output.stdout + output.stderr


def test_rotate_password_refuses_a_spec_owned_password(tmp_path: Path, vmforge: Any) -> None:
    spec = write_spec(tmp_path / "vmforge.toml", 5986)
    refused = vmforge("remote", "rotate-password", NAME, "--spec", str(spec))
    assert refused.code == 1 and "windows.password is set in the spec" in refused.stderr
    unpinned = vmforge("remote", "exec", NAME, "--spec", str(spec), "--", "whoami")
    assert unpinned.code == 1 and f"hint: run 'vmforge remote pin {NAME}'" in unpinned.stderr


def test_insecure_http_needs_the_spec_allowance(tmp_path: Path, vmforge: Any) -> None:
    spec = write_spec(tmp_path / "vmforge.toml", 5985, 'winrm_scheme = "http"\n')
    refused = vmforge("remote", "exec", NAME, "--spec", str(spec), "--", "whoami")
    assert refused.code == 2 and "remote.allow_insecure" in refused.stderr


def test_ssh_exec_pins_host_key(tmp_path: Path, vmforge: Any) -> None:
    vmdir = VmDir(NAME)
    _, public = ssh_key(vmdir)
    server = start_sshd(tmp_path / "sshd", public)
    try:
        spec = write_spec(tmp_path / "vmforge.toml", server.port, 'ssh_user = "root"\n')
        spec.write_text(spec.read_text().replace("[vm]", 'os = "probe"\n[vm]'))
        ran = vmforge("remote", "exec", NAME, "--channel", "ssh", "--spec", str(spec), "--", "echo", "a b")
        assert (ran.code, ran.stdout) == (0, "a b\n"), ran.stderr
        assert (get_pin(vmdir, PIN_SSH) or "").startswith("ssh-ed25519 ")
        reset = vmforge("remote", "pin", NAME, "--channel", "ssh", "--reset", "--spec", str(spec))
        assert reset.code == 0 and get_pin(vmdir, PIN_SSH) is None
    finally:
        stop_sshd(server)
