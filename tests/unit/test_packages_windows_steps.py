"""The Windows command sequence of a package install, against golden rendered scripts.

Syntax only: every script is parsed by tree-sitter's PowerShell grammar (no PowerShell runs
here).  Regenerate the golden files on purpose: VMFORGE_REGEN_GOLDEN=1 pytest tests/unit/...
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import assert_golden
from tests.packages_support import write_idd_package
from tests.unit.test_os_adapters import PS, decode, errors
from vmforge.guest.os_windows import WindowsAdapter, ps_literal, render_script
from vmforge.packages.catalog import Package, find_package, resolve_argument
from vmforge.packages.preflight import Target, check_package
from vmforge.packages.steps import GuestStep, facts_argv, install_steps, verify_steps
from vmforge.resources import DataFolder, data_dir
from vmforge.spec import parse_spec

SCRIPTS = sorted((data_dir(DataFolder.TEMPLATES) / "guest" / "windows" / "packages").glob("*.ps1"))
STAGE = "C:\\ProgramData\\vmforge\\packages\\testidd"
NASTY = "C:\\Users\\O'Brien\\$(Remove-Item C:\\ -Recurse)\n\x27; Remove-Item C:\\ #\\x.inf"


def compositor_package(folder: Path) -> Package:
    """vmforge's own compositor descriptor with a stand-in for the user's installer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compositor.msi").write_bytes(b"stand-in msi")
    return find_package("compositor", folder)


def transcript(steps: list[GuestStep]) -> str:
    parts = []
    for step in steps:
        script = decode(list(step.argv))
        tree = PS.parse(script.encode())
        assert errors(tree.root_node) == [], step.label
        parts.append(f"### {step.label} (timeout {step.timeout:g}s)\n{script.rstrip()}\n")
    return "\n".join(parts)


def test_every_package_script_parses_with_hostile_values() -> None:
    names = {p.stem for p in SCRIPTS}
    assert names == {
        "add-driver",
        "create-root-device",
        "guest-facts",
        "import-certificate",
        "verify-app",
        "verify-driver",
    }
    for script in SCRIPTS:
        assert script.read_text().startswith("# vmforge:")
        # A value in a comment would end the comment at its first newline and run the rest.
        assert not [line for line in script.read_text().splitlines() if line.lstrip().startswith("#") and "{{" in line]
        rendered = render_script(
            f"packages/{script.stem}", path=NASTY, thumbprint=NASTY, inf_path=NASTY, hardware_id=NASTY,
            services=NASTY, tasks=NASTY,
        )  # fmt: skip
        assert errors(PS.parse(rendered.encode()).root_node) == [], script.name
        assert "Remove-Item" not in rendered.replace(ps_literal(NASTY), "''"), script.name


def test_root_device_script_uses_setupapi_not_third_party_tools() -> None:
    script = render_script("packages/create-root-device", inf_path="C:\\a.inf", hardware_id="Root\\X")
    for call in (
        "SetupDiCreateDeviceInfoW(",
        "SetupDiSetDeviceRegistryPropertyW(set, ref data, SPDRP_HARDWAREID",
        "SetupDiCallClassInstaller(DIF_REGISTERDEVICE",
        "UpdateDriverForPlugAndPlayDevicesW(",
    ):
        assert call in script
    assert "devcon" not in script.lower().replace("no devcon", "") and "nefcon" not in script.lower().replace(
        "or nefcon", ""
    )


def test_driver_install_sequence_golden(tmp_path: Path) -> None:
    package = resolve_argument(str(write_idd_package(tmp_path / "idd")))
    checked = check_package(package, parse_spec({}, label="t"), Target("windows", "amd64", "Enterprise", 26100))
    adapter = WindowsAdapter()
    steps = install_steps(checked, adapter, STAGE)
    assert [s.label for s in steps] == [
        "import certificate TestIdd.cer into LocalMachine\\TrustedPublisher",
        "pnputil /add-driver TestIdd.inf /install",
        "create root device Root\\TestIdd",
    ]
    assert_golden("packages/driver-install.txt", transcript(steps))
    assert_golden("packages/driver-verify.txt", transcript(verify_steps(checked, adapter, STAGE)))


def test_app_install_sequence_golden(tmp_path: Path) -> None:
    package = compositor_package(tmp_path / "comp")
    checked = check_package(package, parse_spec({}, label="t"), Target("windows", "amd64", "IoTEnterprise", 26100))
    adapter = WindowsAdapter()
    stage = "C:\\ProgramData\\vmforge\\packages\\compositor"
    steps = install_steps(checked, adapter, stage)
    assert len(steps) == 1 and "'C:\\ProgramData\\vmforge\\packages\\compositor'" in decode(list(steps[0].argv))
    assert_golden("packages/app-install.txt", transcript(steps))
    assert_golden("packages/app-verify.txt", transcript(verify_steps(checked, adapter, stage)))


def test_guest_facts_only_on_windows() -> None:
    from vmforge.guest.os_linux import LinuxAdapter

    argv = facts_argv(WindowsAdapter())
    assert argv is not None and "EditionID" in decode(argv)
    assert facts_argv(LinuxAdapter()) is None


@pytest.mark.parametrize("stage", ["C:\\odd'stage\\x", "C:\\semi;colon"])
def test_stage_paths_stay_literals_in_app_commands(tmp_path: Path, stage: str) -> None:
    package = compositor_package(tmp_path / "comp")
    checked = check_package(package, parse_spec({}, label="t"), Target("windows", "amd64", "Enterprise", 26100))
    script = decode(list(install_steps(checked, WindowsAdapter(), stage)[0].argv))
    assert ps_literal(stage) in script
    assert errors(PS.parse(script.encode()).root_node) == []
