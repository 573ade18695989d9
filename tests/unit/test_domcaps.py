from __future__ import annotations

from pathlib import Path

import pytest

from tests.goldencases import DOMCAPS, FIRMWARE
from vmforge.errors import VmforgeError
from vmforge.host.domcaps import DomainCaps, check_tpm, choose_loader, parse_domcaps, vars_template


@pytest.fixture
def caps() -> DomainCaps:
    return parse_domcaps(DOMCAPS.read_text())


def test_parse_recorded_capabilities(caps: DomainCaps) -> None:
    assert caps.machine == "pc-q35-7.2"
    assert caps.loaders == (
        "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
        "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
    )
    assert caps.secure_boot and caps.efi and caps.tpm_emulator
    assert "maximum" in caps.cpu_modes and "host-passthrough" not in caps.cpu_modes  # TCG


def test_loader_choice(caps: DomainCaps) -> None:
    assert choose_loader(caps, secure=True) == "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
    assert choose_loader(caps, secure=False) == "/usr/share/OVMF/OVMF_CODE_4M.fd"


def test_vars_template_pairs_microsoft_keys_with_secure_boot() -> None:
    assert (
        vars_template("/usr/share/OVMF/OVMF_CODE_4M.ms.fd", True, (FIRMWARE,)) == "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
    )
    assert vars_template("/usr/share/OVMF/OVMF_CODE_4M.fd", False, (FIRMWARE,)) == "/usr/share/OVMF/OVMF_VARS_4M.fd"
    assert vars_template("/opt/other/CODE.fd", False, (FIRMWARE,)) is None


def test_missing_ovmf_and_swtpm_are_clear_errors(caps: DomainCaps) -> None:
    bare = DomainCaps(caps.machine, (), False, False, False, caps.cpu_modes)
    with pytest.raises(VmforgeError, match="offers no secure-boot OVMF") as err:
        choose_loader(bare, secure=True)
    assert err.value.hint and "ovmf" in err.value.hint
    with pytest.raises(VmforgeError, match="cannot emulate a TPM") as err:
        check_tpm(bare)
    assert err.value.hint and "swtpm" in err.value.hint


def test_real_descriptors_on_this_host_match_the_recording() -> None:
    # The recorded descriptors are Debian's; the host's own must pair the same way.
    host_dirs = (Path("/usr/share/qemu/firmware"),)
    assert vars_template("/usr/share/OVMF/OVMF_CODE_4M.ms.fd", True, host_dirs) == "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
