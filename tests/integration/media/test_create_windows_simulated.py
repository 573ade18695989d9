"""The Windows path of 'vmforge create' past Setup, against a *simulated* Windows.

Real: ISO inspection and answer media of a Windows-like ISO (real WIMs), the libvirt domain
with UEFI, NVRAM and a TPM (install shape, Setup's reboot, post-install shape, media detach,
final shape, the offline snapshot of disk + NVRAM + TPM state), the WinRM wire (HTTPS with the
VM's own pinned certificate, NTLM), the pipeline's state, resume and diagnostics (a real PNG).

*Simulated*: the guest.  Its serial stream is OVMF's recorded output with Windows' phase
markers spliced in (tests/create_windows_sim.py), fed to the pipeline through its
``phase_source`` injection point; Setup's reboot is the test destroying the domain once WinPE's
stream is written (what ``on_reboot = destroy`` does).  After ``postinstall-done`` the guest is
the WinRM test server's emulated Windows (tests/winrm_server) with the guard scripts answered
by tests/guards_sim.py.  What is checked are the pipeline's decisions: where it stops and why,
where a re-run resumes, what it saves for diagnosis (Setup's Panther logs over WinRM), that
guards, packages, password rotation and the snapshot happen - not an exact command list.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.create_windows_sim import (
    SECOND_BOOT,
    WINPE,
    CreateGuestServer,
    RecordedSerial,
    chunks,
    marker,
    write_windows_app,
)
from tests.guards_sim import SimWindows
from tests.winrm_server.server import ServerConfig, write_user_file
from vmforge.create.pipeline import Create, CreateFailed, CreateResult
from vmforge.create.steps import STEPS
from vmforge.credentials import ADMIN_PASSWORD, admin_password
from vmforge.domain.destroy import destroy_vm
from vmforge.guest.remote_access import winrm_certificate, winrm_endpoint
from vmforge.guest.winrm import WinrmAuthError, WinrmTransport
from vmforge.plan import resolve_plan
from vmforge.spec import Spec, parse_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration
NAME = "vmft-s2c-win"
USER = "vmforge"
SETUPACT = b"2026-01-01 08:00:00, Info  [0x0606cc] PANTHR CBlackboard::Open: C:\\$WINDOWS.~BT\\Sources\\Panther\r\n"


def spec_data(iso: Path, package: Path, port: int) -> dict[str, Any]:
    return {
        "vm": {"name": NAME, "virt_type": "qemu", "memory": "1GiB", "vcpus": 1, "snapshot": "installed"},
        "disk": {"size": "2GiB", "bus": "sata"},
        "network": {"type": "none"},
        "windows": {"iso": str(iso), "family": "11", "edition": "Windows 11 Pro", "hardware_bypass": "on"},
        "packages": [{"name": "simapp", "path": str(package)}],
        "guards": {"profile": "desktop", "desktop_users": [USER]},
        "remote": {"channels": ["winrm"], "address": "127.0.0.1", "winrm_port": port},
        "timeouts": {"install": "40s", "shutdown": "5s"},
    }


class Rig:
    def __init__(self, tmp_path: Path, iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = tmp_path / "state"
        monkeypatch.setenv("VMFORGE_STATE_DIR", str(self.state))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        self.vm_dir = VmDir(NAME, root=self.state)
        package = write_windows_app(tmp_path / "simapp")
        # The VM's own WinRM certificate and generated password, as vmforge keeps them; the
        # simulated guest serves that certificate and accepts that password.
        pair = winrm_certificate(self.vm_dir, NAME)
        self.first_password = admin_password(parse_spec(spec_data(iso, package, 5986), label="t"), self.vm_dir)
        users = tmp_path / "ntlm-users"
        write_user_file(users, USER, self.first_password)
        monkeypatch.setenv("NTLM_USER_FILE", str(users))
        probe_spec = parse_spec(spec_data(iso, package, 5986), label="t")
        plan = resolve_plan(probe_spec)
        assert plan.guards is not None
        self.sim = SimWindows(plan.guards)
        self.sim.idd_present = False  # the first guards run finds no IDD: a failure to diagnose
        config = ServerConfig(USER, self.first_password, cert_pem=pair.cert_pem, key_pem=pair.key_pem)
        self.guest_root = tmp_path / "guest"
        self.server = CreateGuestServer(config, self.guest_root, self.sim)
        self.spec: Spec = parse_spec(spec_data(iso, package, self.server.port), label="test spec")
        self.serial = RecordedSerial(tmp_path / "recorded-serial.log")
        self.serial.streams["setup-phases"] = chunks(WINPE, 6000)
        self.serial.reboots["setup-phases"] = self.setup_reboots
        self.serial.streams["postinstall"] = chunks(SECOND_BOOT, 1500)  # no postinstall-done yet
        self.conn = libvirt.open("qemu:///system")

    def setup_reboots(self) -> None:
        """Windows Setup reboots at the end of WinPE; the install shape's on_reboot = destroy."""
        self.conn.lookupByName(NAME).destroy()

    def create(self) -> CreateResult:
        job = Create(
            self.spec,
            self.conn,
            reporter=Reporter(quiet=True),
            vm_dir=self.vm_dir,
            phase_source=self.serial.source,
        )
        try:
            return job.run()
        finally:
            job.close()

    def failing_create(self) -> CreateFailed:
        with pytest.raises(CreateFailed) as caught:
            self.create()
        return caught.value

    def recorded_steps(self) -> list[str]:
        return [s["name"] for s in json.loads(self.vm_dir.state_file.read_text())["steps"]]

    def volumes(self) -> list[str]:
        pool = self.conn.storagePoolLookupByName("vmforge")
        pool.refresh(0)
        return sorted(v for v in pool.listVolumes() if v.startswith(NAME))


@pytest.fixture
def rig(tmp_path: Path, win11_iso: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    rig = Rig(tmp_path, win11_iso, monkeypatch)
    with rig.server:
        try:
            yield rig
        finally:
            destroy_vm(rig.conn, NAME, rig.vm_dir)
            rig.conn.close()


def test_windows_create_past_setup_decides_resumes_and_diagnoses(rig: Rig) -> None:
    # 1. Setup's reboot is followed into the post-install shape; post-install never reports
    #    done: the install deadline names the last phase; no channel yet, so no Setup logs.
    failed = rig.failing_create()
    assert failed.step == "postinstall"
    assert "postinstall-done did not happen within 40s (last phase: postinstall-start)" in failed.message
    assert failed.diagnostics is not None
    png = (failed.diagnostics.folder / "screenshot.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    assert "setupact.log (no guest channel is up)" in failed.diagnostics.missing
    assert rig.recorded_steps() == list(STEPS[: STEPS.index("postinstall")])
    setup = json.loads(rig.vm_dir.state_file.read_text())["steps"][STEPS.index("setup-phases")]
    assert setup["detail"]["phases"] == ["pe-start"] and setup["detail"]["stopped"] == "destroyed"
    dom = rig.conn.lookupByName(NAME)
    assert dom.isActive() and "<on_reboot>restart</on_reboot>" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    # 2. The re-run resumes at postinstall (the marker arrives in the appended log), reaches the
    #    guest over WinRM, installs the package; the guards fail (no IDD): exit 3, and Setup's
    #    logs come out of the guest over WinRM into the diagnostics.
    rig.serial.streams["postinstall"] = [marker("postinstall-done")]
    panther = rig.guest_root / "C" / "Windows" / "Panther"
    panther.mkdir(parents=True)
    (panther / "setupact.log").write_bytes(SETUPACT)
    failed = rig.failing_create()
    assert failed.step == "guards" and failed.exit_code == 3
    assert "guards not enforced: idd-desktop" in failed.message
    diag = failed.diagnostics
    assert diag is not None
    assert {"screenshot.png", "serial0.log", "setupact.log"} <= set(diag.saved)
    assert (diag.folder / "setupact.log").read_bytes() == SETUPACT
    assert [m for m in diag.missing if m.startswith("setuperr.log") and "Could not find file" in m]
    assert rig.serial.sources == ["setup-phases", "postinstall", "postinstall"]
    assert rig.recorded_steps() == list(STEPS[: STEPS.index("guards")])
    installed = rig.guest_root / "C" / "Program Files" / "SimApp" / "simapp.exe"
    assert installed.read_bytes() == (rig.spec.packages[0].path / "bin" / "simapp.exe").read_bytes()  # type: ignore[operator]
    state = json.loads(rig.vm_dir.state_file.read_text())
    assert state["extra"]["packages"]["simapp"]["status"] == "installed"
    assert state["extra"]["last_failure"]["step"] == "guards"

    # 3. Fixed in the guest: the re-run continues at guards and finishes - guards enforced and
    #    checked, the package still verified, media detached, the bootstrap password rotated
    #    over WinRM, the final shape, and an offline snapshot with NVRAM and TPM state.
    rig.sim.idd_present = True
    result = rig.create()
    statuses = {s.name: s.status for s in result.steps}
    assert {n for n, s in statuses.items() if s == "done-earlier"} == set(STEPS[: STEPS.index("guards")])
    assert all(statuses[n] == "done" for n in STEPS[STEPS.index("guards") :])
    detail = {s.name: s.detail for s in result.steps}
    assert detail["verify"]["winrm"] == "ok" and detail["verify"]["guards"] == "ok"
    assert detail["guards"]["counts"]["ok"] == 2 and sum(detail["guards"]["counts"].values()) == 2
    assert "answer" in detail["detach-media"]["removed"]  # the post-install shape has no installer drive
    assert rig.recorded_steps() == list(STEPS)  # each step once, in order
    assert [p["phase"] for p in result.phases] == [
        "pe-start",
        "specialize",
        "firstlogon",
        "postinstall-start",
        "postinstall-done",
    ]
    assert rig.sim.registry, "the policies guard wrote the simulated registry"

    new_password = rig.vm_dir.load_secrets()[ADMIN_PASSWORD]
    assert new_password != rig.first_password and rig.server.config.password == new_password
    old = dataclasses.replace(winrm_endpoint(rig.spec, rig.vm_dir, "127.0.0.1"), password=rig.first_password)
    with pytest.raises(WinrmAuthError):
        WinrmTransport(old, open_attempts=1).run(["cmd.exe", "/c", "ver"], timeout=30)
    fresh = WinrmTransport(winrm_endpoint(rig.spec, rig.vm_dir, "127.0.0.1"))
    assert fresh.run(["cmd.exe", "/c", "ver"], timeout=30).ok
    fresh.close()

    snapshot = detail["snapshot"]
    assert snapshot["label"] == "installed" and snapshot["shutdown"].startswith("forced after")
    assert snapshot["nvram_sha256"] and snapshot["tpm_sha256"]
    assert (rig.vm_dir.root / "snapshots" / "installed" / "nvram.fd").is_file()
    assert json.loads(rig.vm_dir.state_file.read_text())["extra"]["known_good_snapshot"] == "installed"
    dom = rig.conn.lookupByName(NAME)
    config = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert dom.isActive()  # started again after the snapshot
    assert "device='cdrom'" not in config and "<on_reboot>restart</on_reboot>" in config
    assert f"{NAME}.snap-installed.qcow2" in rig.volumes() and f"{NAME}.qcow2" in rig.volumes()
    assert "last_failure" not in json.loads(rig.vm_dir.state_file.read_text())["extra"]

    # destroy leaves nothing: domain, every volume (the frozen layer too), NVRAM, TPM state, state.
    nvram = Path(config.split("<nvram")[1].split(">")[1].split("<")[0])
    uuid = dom.UUIDString()
    destroy_vm(rig.conn, NAME, rig.vm_dir)
    with pytest.raises(libvirt.libvirtError):
        rig.conn.lookupByName(NAME)
    assert rig.volumes() == []
    assert not nvram.exists() and not Path(f"/var/lib/libvirt/swtpm/{uuid}").exists()
    assert not rig.vm_dir.root.exists()
