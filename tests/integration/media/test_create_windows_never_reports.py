"""The Windows path of 'vmforge create' on a Windows-like installer ISO that boots nothing.

Real: ISO inspection, the answer media, pool volumes (installer + answer uploaded), the install
shape with UEFI (secure boot, NVRAM) and a TPM, the start with Enter pressed for the CD prompt,
OVMF's real serial output.  No Windows runs, so no phase marker ever comes: the create must
stop at [timeouts] boot, name the step, save a real PNG screenshot and the serial log, and a
'destroy' must leave no domain, volume, NVRAM file or TPM state behind.

The serial output OVMF wrote is the firmware noise of tests/data/create/ovmf-serial.bin (the
recorded-stream unit tests splice Windows' markers into it); VMFORGE_REGEN_GOLDEN=1 refreshes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

REPO = Path(__file__).resolve().parents[3]
RECORDING = REPO / "tests" / "data" / "create" / "ovmf-serial.bin"
NAME = "vmft-cr-win"
pytestmark = pytest.mark.integration


def _run(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmforge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=timeout,
        check=False,
    )


def test_windows_create_times_out_with_diagnostics_and_destroy_leaves_nothing(tmp_path: Path, win11_iso: Path) -> None:
    state = tmp_path / "state"
    env = {"VMFORGE_STATE_DIR": str(state)}
    spec = tmp_path / "win.toml"
    spec.write_text(
        "\n".join(
            [
                "[vm]",
                f'name = "{NAME}"',
                'virt_type = "qemu"',
                'memory = "1GiB"',
                "vcpus = 1",
                "[disk]",
                'size = "2GiB"',
                'bus = "sata"',
                "[network]",
                'type = "none"',
                "[windows]",
                f'iso = "{win11_iso}"',
                'edition = "Windows 11 Pro"',
                'hardware_bypass = "on"',
                "[timeouts]",
                'boot = "45s"',
            ]
        )
        + "\n"
    )
    conn = libvirt.open("qemu:///system")
    try:
        result = _run("create", "--spec", str(spec), "--json", env=env)
        assert result.returncode == 1, result.stderr
        error = json.loads(result.stdout)["error"]
        assert error["step"] == "setup-phases"
        assert "no phase marker from the guest within 45s" in error["message"]
        diag = Path(error["diagnostics"]["folder"])
        assert diag.parent == state / "vms" / NAME / "diagnostics"
        png = (diag / "screenshot.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
        serial = (diag / "serial0.log").read_bytes()
        assert serial, "OVMF writes to the serial port; the copy must not be empty"
        assert "setupact.log (no guest channel is up)" in error["diagnostics"]["missing"]
        if os.environ.get("VMFORGE_REGEN_GOLDEN") == "1":
            RECORDING.write_bytes(serial)
        # What the failed run left is vmforge's and complete: the domain in the install shape.
        dom = conn.lookupByName(NAME)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert "<on_reboot>destroy</on_reboot>" in xml
        nvram = xml.split("<nvram")[1].split(">")[1].split("<")[0]
        assert Path(nvram).exists()
        uuid = dom.UUIDString()
        steps = json.loads((state / "vms" / NAME / "state.json").read_text())["steps"]
        assert [s["name"] for s in steps] == ["preflight", "answer-media", "storage", "define-install", "start-install"]

        # The generated password: only 'creds' prints it; never create's output, state or the XML.
        password = json.loads((state / "vms" / NAME / "secrets.json").read_text())["admin_password"]
        status = _run("status", NAME, "--spec", str(spec), "--json", env=env)
        assert json.loads(status.stdout)["vms"][0]["last_failure"]["step"] == "setup-phases"
        for text in (result.stdout, result.stderr, status.stdout, status.stderr, xml):
            assert password not in text
        assert password not in (state / "vms" / NAME / "state.json").read_text()
        creds = _run("creds", NAME, "--json", env=env)
        assert json.loads(creds.stdout)["credentials"]["admin_password"] == password

        destroyed = _run("destroy", NAME, "--spec", str(spec), "--json", env=env)
        assert destroyed.returncode == 0, destroyed.stderr
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByName(NAME)
        pool = conn.storagePoolLookupByName("vmforge")
        pool.refresh(0)
        assert [v for v in pool.listVolumes() if v.startswith(NAME)] == []
        assert not Path(nvram).exists()
        assert not Path(f"/var/lib/libvirt/swtpm/{uuid}").exists()
        assert not (state / "vms" / NAME).exists()
    finally:
        _run("destroy", NAME, "--spec", str(spec), env=env)
        conn.close()
