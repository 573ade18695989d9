"""The WinRM set-up on real answer media: built by the CLI from a fixture installer ISO, read
back with xorriso; the PFX on it loads with the password kept in the VM's secrets and holds
the certificate the host pinned; the image is private (0600) and no secret reaches any output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from tests.integration.media.test_media_build import _extract, _xorriso_files
from tests.unit.test_media_bootstrap import PARSER
from vmforge.guest.certs import fingerprint_der
from vmforge.guest.remote_access import PIN_WINRM, get_pin
from vmforge.guest.winrm_setup import SECRET_PFX_PASSWORD, rotate_winrm_certificate
from vmforge.state import VmDir

pytestmark = pytest.mark.integration

NAME = "vmft-s2w-media"


def _spec(tmp: Path, iso: Path) -> Path:
    path = tmp / "vmforge.toml"
    path.write_text(
        f'[vm]\nname = "{NAME}"\n[disk]\nbus = "sata"\n[windows]\niso = "{iso}"\n'
        '[remote]\nchannels = ["winrm", "agent"]\n'
    )
    return path


def test_answer_iso_carries_the_pinned_certificate(vmforge: Any, tmp_path: Path, win11_iso: Path) -> None:
    spec = _spec(tmp_path, win11_iso)
    built = vmforge("media", "build", "--spec", str(spec), "--json", "--debug")
    assert built.code == 0, built.stderr
    iso = Path(built.json()["path"])
    assert iso.stat().st_mode & 0o777 == 0o600  # it holds a private key
    files = _xorriso_files(iso)
    assert {"/vmforge/bootstrap.ps1", "/vmforge/winrm-listener.ps1", "/vmforge/winrm.pfx"} <= set(files)
    tree = _extract(iso, tmp_path / "x")
    vmdir = VmDir(NAME)
    secrets = vmdir.load_secrets()
    password = secrets[SECRET_PFX_PASSWORD]
    assert (tree / "vmforge" / "winrm-pfx.txt").read_text() == password
    _key, cert, _ = pkcs12.load_key_and_certificates((tree / "vmforge" / "winrm.pfx").read_bytes(), password.encode())
    assert cert is not None
    assert fingerprint_der(cert.public_bytes(Encoding.DER)) == get_pin(vmdir, PIN_WINRM)
    for script in ("bootstrap.ps1", "winrm-listener.ps1"):
        text = (tree / "vmforge" / script).read_bytes()
        assert not PARSER.parse(text).root_node.has_error and password.encode() not in text
    assert b"Enable-WinrmListener" in (tree / "vmforge" / "bootstrap.ps1").read_bytes()
    logs = "".join(p.read_text(errors="replace") for p in vmdir.logs.rglob("*") if p.is_file())
    for secret in (password, secrets["admin_password"]):
        assert secret not in built.stdout + built.stderr + logs

    again = vmforge("media", "build", "--spec", str(spec), "--json")
    assert again.json()["reused"] and again.json()["path"] == str(iso)
    rotate_winrm_certificate(vmdir, "VMFT")
    rotated = vmforge("media", "build", "--spec", str(spec), "--json")
    assert not rotated.json()["reused"] and rotated.json()["inputs_sha256"] != built.json()["inputs_sha256"]
    assert not iso.exists() and os.stat(rotated.json()["path"]).st_mode & 0o777 == 0o600
