"""``vmforge guest exec|cp|wait`` over every channel, through the real CLI: SSH against a real
sshd, WinRM against the loopback WS-Management test server (simulated Windows), each with a
state folder like the one ``vmforge create`` leaves; the spec's channel order decides the
default, ``--via`` overrides it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_ssh_transport import start_sshd, stop_sshd
from tests.winrm_server.server import ServerConfig, WinrmTestServer, write_user_file
from vmforge.credentials import ADMIN_PASSWORD
from vmforge.guest.remote_access import PIN_SSH, get_pin, ssh_key, winrm_certificate
from vmforge.state import VmDir, VmState

pytestmark = pytest.mark.integration

NAME = "vmft-s2w-via"
PASSWORD = "Via-Pass-5150"


def created_vm() -> VmDir:
    """The state folder of a created VM: steps recorded, credentials in the 0600 secrets."""
    vmdir = VmDir(NAME)
    state = VmState(name=NAME)
    for step in ("preflight", "answer-media", "guest-channel"):
        vmdir.record_step(state, step)
    values = vmdir.load_secrets()
    values[ADMIN_PASSWORD] = PASSWORD
    vmdir.save_secrets(values)
    return vmdir


def write_spec(path: Path, body: str, top: str = "") -> Path:
    path.write_text(f'{top}[vm]\nname = "{NAME}"\n{body}')
    return path


def test_guest_commands_over_ssh(tmp_path: Path, vmforge: Any) -> None:
    vmdir = created_vm()
    _, public = ssh_key(vmdir)
    server = start_sshd(tmp_path / "sshd", public)
    try:
        spec = write_spec(
            tmp_path / "vmforge.toml",
            f'[remote]\nchannels = ["agent", "ssh"]\naddress = "127.0.0.1"\n'
            f'ssh_port = {server.port}\nssh_user = "root"\nconnect_timeout = "5s"\n',
            top='os = "probe"\n',  # a Linux guest: the Linux adapter
        )
        common = ("--spec", str(spec))

        ran = vmforge("guest", "exec", NAME, "--via", "ssh", *common, "--", "sh", "-c", "echo out; echo err >&2")
        assert (ran.code, ran.stdout, ran.stderr) == (0, "out\n", "err\n")
        assert (get_pin(vmdir, PIN_SSH) or "").startswith("ssh-ed25519 ")  # pinned on first contact
        failed = vmforge("guest", "exec", NAME, "--via", "ssh", *common, "--json", "--", "sh", "-c", "exit 4")
        assert failed.code == 1 and failed.json()["rc"] == 4 and failed.json()["channel"] == "ssh"

        payload = tmp_path / "payload.bin"
        payload.write_bytes(os.urandom(300_000))
        remote = f"{NAME}:{tmp_path}/in-guest.bin"
        copied = vmforge("guest", "cp", str(payload), remote, "--via", "ssh", *common, "--json")
        assert copied.code == 0, copied.stderr
        assert (tmp_path / "in-guest.bin").read_bytes() == payload.read_bytes()
        back = tmp_path / "back.bin"
        out = vmforge("guest", "cp", remote, str(back), "--via", "ssh", *common, "--json")
        assert out.code == 0 and out.json()["sha256"] == copied.json()["sha256"]
        assert back.read_bytes() == payload.read_bytes()

        # No --via: the spec's order. 'agent' comes first, but libvirt has no such domain: ssh answers.
        waited = vmforge("guest", "wait", NAME, *common, "--timeout", "60", "--json")
        assert waited.code == 0, waited.stderr
        assert waited.json()["channel"] == "ssh" and waited.json()["os"]["family"] == "linux"
        plain = vmforge("guest", "exec", NAME, *common, "--json", "--", "true")
        assert plain.code == 0 and plain.json()["channel"] == "ssh"
        agent = vmforge("guest", "exec", NAME, "--via", "agent", *common, "--", "true")
        assert agent.code == 1 and f"no vmforge VM named '{NAME}'" in agent.stderr
    finally:
        stop_sshd(server)
    gone = vmforge("guest", "exec", NAME, *common, "--", "true")
    assert gone.code == 1 and "answers on none of its channels" in gone.stderr
    assert "agent: " in gone.stderr and "ssh: " in gone.stderr and "Traceback" not in gone.stderr


def test_guest_commands_over_winrm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vmforge: Any) -> None:
    users = tmp_path / "users"
    write_user_file(users, "vmforge", PASSWORD)
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    vmdir = created_vm()
    pair = winrm_certificate(vmdir, NAME)  # made and pinned when the answer media was built
    config = ServerConfig("vmforge", PASSWORD, cert_pem=pair.cert_pem, key_pem=pair.key_pem)
    with WinrmTestServer(config, tmp_path / "guest") as server:
        spec = write_spec(
            tmp_path / "vmforge.toml",
            f'[remote]\nchannels = ["winrm", "agent"]\naddress = "127.0.0.1"\nwinrm_port = {server.port}\n',
        )
        common = ("--spec", str(spec))
        ran = vmforge("guest", "exec", NAME, "--via", "winrm", *common, "--", "sh", "-c", "echo hi; exit 3")
        assert (ran.code, ran.stdout) == (1, "hi\n") and "exited 3 in the guest" in ran.stderr

        payload = tmp_path / "payload.bin"
        payload.write_bytes(os.urandom(200_000))  # more than one WS-Man Send
        remote = f"{NAME}:C:\\Windows\\Temp\\vmforge\\payload.bin"
        copied = vmforge("guest", "cp", str(payload), remote, "--via", "winrm", *common, "--json")
        assert copied.code == 0, copied.stderr
        stored = server.guest.root / "C" / "Windows" / "Temp" / "vmforge" / "payload.bin"
        assert stored.read_bytes() == payload.read_bytes()
        back = tmp_path / "back.bin"
        out = vmforge("guest", "cp", remote, str(back), *common, "--json")  # default: winrm is first
        assert out.code == 0 and out.json()["channel"] == "winrm"
        assert back.read_bytes() == payload.read_bytes()

        waited = vmforge("guest", "wait", NAME, *common, "--timeout", "30", "--json")
        assert waited.code == 0, waited.stderr
        assert waited.json()["channel"] == "winrm" and waited.json()["os"]["family"] == "windows"
        for result in (ran, copied, out, waited):
            assert PASSWORD not in result.stdout + result.stderr
