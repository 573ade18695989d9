"""libvirt checks: the recorded domain capabilities of the real daemon, libvirt's test driver."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.conftest import REPO
from vmforge.doctor import checks_libvirt as lv
from vmforge.doctor.model import Status
from vmforge.host.domcaps import parse_domcaps
from vmforge.spec import Firmware, VirtType

CAPS = parse_domcaps((REPO / "tests/data/domcaps/qemu-q35-libvirt9.0.xml").read_text())
DESCRIPTORS = (REPO / "tests/data/firmware",)


def test_reachable_on_the_test_driver_and_versions() -> None:
    result, conn = lv.check_libvirt_reachable("test:///default")
    try:
        assert result.status is Status.PASS
        versions = lv.check_versions(conn)
        assert versions.status is Status.PASS and versions.summary.startswith("libvirt 9.0.0, TEST")
        # The test driver cannot give domain capabilities: the check fails and says what to do.
        domcaps, caps = lv.check_domain_caps(conn, VirtType.KVM)
        assert domcaps.status is Status.FAIL and caps is None
        assert "not supported" in domcaps.summary and 'virt_type = "qemu"' in (domcaps.fix or "")
    finally:
        conn.close()


def test_unreachable_uri_fails_with_the_daemon_hint() -> None:
    result, conn = lv.check_libvirt_reachable("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert conn is None and result.status is Status.FAIL
    assert "cannot connect" in result.summary and result.fix and "libvirtd -d" in result.fix


def test_old_versions_warn() -> None:
    class OldDaemon:
        def getLibVersion(self) -> int:
            return 6_010_000

        def getType(self) -> str:
            return "QEMU"

        def getVersion(self) -> int:
            return 5_002_000

    result = lv.check_versions(OldDaemon())
    assert result.status is Status.WARN and "libvirt 6.10.0 / QEMU 5.2.0" in result.summary


def test_cpu_modes_from_domain_caps() -> None:
    assert lv.check_cpu_mode(CAPS, "maximum", VirtType.QEMU).status is Status.PASS
    assert lv.check_cpu_mode(CAPS, "Skylake-Client", VirtType.QEMU).status is Status.SKIP
    without = dataclasses.replace(CAPS, cpu_modes=("maximum",))
    result = lv.check_cpu_mode(without, "host-passthrough", VirtType.QEMU)
    assert result.status is Status.FAIL and 'vm.cpu = "maximum"' in (result.fix or "")


def test_secure_boot_firmware_and_enrolled_vars_template() -> None:
    uefi, template = lv.check_firmware(CAPS, Firmware.UEFI_SECURE, DESCRIPTORS)
    assert uefi.status is Status.PASS and uefi.summary.endswith("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
    assert template.status is Status.PASS
    assert template.summary == "vars template with Microsoft keys enrolled: /usr/share/OVMF/OVMF_VARS_4M.ms.fd"


def test_plain_uefi_and_bios_and_remote() -> None:
    uefi, template = lv.check_firmware(CAPS, Firmware.UEFI, DESCRIPTORS)
    assert uefi.summary.endswith("/usr/share/OVMF/OVMF_CODE_4M.fd") and template.status is Status.PASS
    assert [r.status for r in lv.check_firmware(CAPS, Firmware.BIOS, DESCRIPTORS)] == [Status.SKIP, Status.SKIP]
    assert lv.check_firmware(CAPS, Firmware.UEFI, None)[1].status is Status.SKIP


def test_missing_ovmf_fails_and_missing_descriptors_warn(tmp_path: Path) -> None:
    no_secure = dataclasses.replace(CAPS, secure_boot=False, loaders=("/usr/share/OVMF/OVMF_CODE_4M.fd",))
    uefi, _ = lv.check_firmware(no_secure, Firmware.UEFI_SECURE, DESCRIPTORS)
    assert uefi.status is Status.FAIL and "apt-get install ovmf" in (uefi.fix or "")
    no_loaders = dataclasses.replace(CAPS, loaders=())
    assert lv.check_firmware(no_loaders, Firmware.UEFI, DESCRIPTORS)[0].status is Status.FAIL
    _, template = lv.check_firmware(CAPS, Firmware.UEFI, (tmp_path,))
    assert template.status is Status.WARN and "reinstall ovmf" in (template.fix or "")


def test_swtpm(tmp_path: Path) -> None:
    swtpm = tmp_path / "swtpm"
    assert lv.check_swtpm(CAPS, False, swtpm).status is Status.SKIP
    assert lv.check_swtpm(CAPS, True, swtpm).status is Status.FAIL  # libvirt offers it, binary gone
    swtpm.write_text("")
    assert lv.check_swtpm(CAPS, True, swtpm).status is Status.PASS
    no_tpm = dataclasses.replace(CAPS, tpm_emulator=False)
    result = lv.check_swtpm(no_tpm, True, swtpm)
    assert result.status is Status.FAIL and 'vm.tpm = "off"' in (result.fix or "")
