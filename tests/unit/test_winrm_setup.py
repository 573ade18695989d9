"""The WinRM set-up on the answer media: listener script and bootstrap (golden files + real
PowerShell syntax via tree-sitter), the PFX and its password from the VM's secrets, the pin,
and the media's input hash following the certificate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from tests.golden import assert_golden
from tests.unit.test_media_answer import inspection, spec_for
from tests.unit.test_media_bootstrap import PARSER, _errors
from vmforge.guest.certs import fingerprint_der
from vmforge.guest.remote_access import PIN_WINRM, get_pin
from vmforge.guest.winrm_setup import (
    LISTENER_SCRIPT,
    PFX_FILE,
    PFX_PASSWORD_FILE,
    SECRET_PFX_PASSWORD,
    rotate_winrm_certificate,
    winrm_media_files,
    winrm_pfx,
)
from vmforge.media.answer_iso import inputs_digest
from vmforge.media.bootstrap import render_bootstrap
from vmforge.media.build import media_files, prepare_answer
from vmforge.plan import resolve_plan
from vmforge.state import VmDir

PASSWORD = "Setup-Pass-1"


def _spec(**remote: Any) -> Any:
    spec = spec_for(disk={"bus": "sata"})
    data = spec.model_dump(mode="json")
    data["remote"].update(remote)
    from vmforge.spec import parse_spec

    return parse_spec({k: v for k, v in data.items() if k in {"vm", "disk", "windows", "remote"}}, label="t")


def _vmdir(tmp_path: Path) -> VmDir:
    return VmDir("golden", root=tmp_path / "state")


def _parses(text: str) -> None:
    tree = PARSER.parse(text.encode("ascii"))
    assert not tree.root_node.has_error, _errors(tree.root_node)
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")


def test_https_listener_script_golden_and_secure_settings(tmp_path: Path) -> None:
    files = winrm_media_files(_spec(), _vmdir(tmp_path), "GOLDEN")
    assert sorted(files) == sorted([LISTENER_SCRIPT, PFX_FILE, PFX_PASSWORD_FILE])
    script = files[LISTENER_SCRIPT].decode("ascii")
    _parses(script)
    assert_golden("winrm-listener-https.ps1", script)
    assert "-Transport HTTPS" in script and "-Transport HTTP " not in script and "$Port = 5986" in script
    assert r"'WSMan:\localhost\Service\Auth\Basic' -Value ([bool]0)" in script
    assert r"'WSMan:\localhost\Service\AllowUnencrypted' -Value ([bool]0)" in script
    assert r"'WSMan:\localhost\Service\Auth\Negotiate' -Value $true" in script
    assert "'LocalMachine'" in script and "localport=$Port" in script
    password = files[PFX_PASSWORD_FILE].decode()
    assert password not in script  # read from its file at run time, never in a script's text


@pytest.mark.parametrize(
    ("remote", "port", "basic", "unencrypted"),
    [
        ({"winrm_auth": "basic"}, 5986, 1, 0),  # Basic inside TLS: no allowance needed
        ({"winrm_scheme": "http", "allow_insecure": True}, 5985, 0, 0),  # NTLM seals messages itself
        ({"winrm_scheme": "http", "winrm_auth": "basic", "allow_insecure": True, "winrm_port": 8080}, 8080, 1, 1),
    ],
)
def test_insecure_settings_only_as_the_spec_allows(
    tmp_path: Path, remote: dict[str, Any], port: int, basic: int, unencrypted: int
) -> None:
    files = winrm_media_files(_spec(**remote), _vmdir(tmp_path), "GOLDEN")
    script = files[LISTENER_SCRIPT].decode("ascii")
    _parses(script)
    assert f"$Port = {port}" in script
    assert rf"Auth\Basic' -Value ([bool]{basic})" in script
    assert rf"AllowUnencrypted' -Value ([bool]{unencrypted})" in script
    if remote.get("winrm_scheme") == "http":
        assert PFX_FILE not in files and "-Transport HTTP " in script and "X509" not in script
        assert get_pin(_vmdir(tmp_path), PIN_WINRM) is None
    else:
        assert PFX_FILE in files


def test_no_winrm_channel_no_winrm_files(tmp_path: Path) -> None:
    assert winrm_media_files(_spec(channels=["agent", "ssh"]), _vmdir(tmp_path), "GOLDEN") == {}


def test_pfx_loads_with_the_secret_password_and_matches_the_pin(tmp_path: Path) -> None:
    vmdir = _vmdir(tmp_path)
    files = winrm_media_files(_spec(), vmdir, "GOLDEN")
    secrets = vmdir.load_secrets()
    assert files[PFX_PASSWORD_FILE].decode() == secrets[SECRET_PFX_PASSWORD]
    key, cert, _ = pkcs12.load_key_and_certificates(files[PFX_FILE], secrets[SECRET_PFX_PASSWORD].encode())
    assert key is not None and cert is not None
    assert fingerprint_der(cert.public_bytes(Encoding.DER)) == get_pin(vmdir, PIN_WINRM)
    assert vmdir.secrets_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(files[PFX_FILE], b"not-the-password")
    # Made once: PKCS#12 salts are random, the stored bundle keeps the media reproducible.
    assert winrm_media_files(_spec(), vmdir, "GOLDEN") == files


def test_bootstrap_runs_the_listener_after_the_agent(tmp_path: Path) -> None:
    iso = inspection("win11-24h2")
    plan = resolve_plan(_spec(), media=iso.media_facts())
    text = render_bootstrap(plan, "amd64", LISTENER_SCRIPT)
    _parses(text)
    assert_golden("bootstrap-win11-winrm.ps1", text)
    steps = ["Install-GuestAgent", "Enable-WinrmListener", "Disable-AutoLogon", "Remove-AnswerCopies"]
    assert re.findall(rf"^    ({'|'.join(steps)})\r$", text, re.M) == steps
    assert f"'{LISTENER_SCRIPT}'" in text
    without = render_bootstrap(plan, "amd64")
    _parses(without)
    assert "Enable-WinrmListener" not in without and LISTENER_SCRIPT not in without


def test_media_hash_follows_the_certificate(tmp_path: Path) -> None:
    spec = _spec()
    vmdir = _vmdir(tmp_path)
    prepared = prepare_answer(spec, PASSWORD, inspection("win11-24h2"))
    first = media_files(spec, prepared, vmdir)
    assert f"vmforge/{PFX_FILE}" in first and f"vmforge/{LISTENER_SCRIPT}" in first
    assert "Enable-WinrmListener" in first["vmforge/bootstrap.ps1"].decode()
    assert inputs_digest(media_files(spec, prepared, vmdir), 0) == inputs_digest(first, 0)
    old_pin = get_pin(vmdir, PIN_WINRM)
    new = rotate_winrm_certificate(vmdir, "GOLDEN")
    assert get_pin(vmdir, PIN_WINRM) == new.fingerprint != old_pin
    rotated = media_files(spec, prepared, vmdir)
    assert inputs_digest(rotated, 0) != inputs_digest(first, 0)
    assert winrm_pfx(vmdir, "GOLDEN").fingerprint == new.fingerprint
