"""``vmforge guards``: bad input exits 2 before any guest is contacted (real CLI, subprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmforge.cli.guards_cmd import render
from vmforge.guards.model import GuardReport, GuardResult, ItemResult, ItemState, Status


def _spec(tmp_path: Path, guards: str, edition: str = "Windows 11 Enterprise") -> Path:
    path = tmp_path / "vmforge.toml"
    path.write_text(f'[windows]\nfamily = "11"\nedition = "{edition}"\n[guards]\n{guards}\n')
    return path


@pytest.mark.parametrize("verb", ["check", "enforce"])
def test_unknown_guard_is_a_spec_error(vmforge: Any, tmp_path: Path, verb: str) -> None:
    spec = _spec(tmp_path, 'profile = "desktop"\nguards = ["policies", "idd-dekstop"]')
    result = vmforge("guards", verb, "vmft-grd-x", "--spec", str(spec), "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert "guards.guards" in error["message"] and "did you mean 'idd-desktop'?" in error["message"]


def test_compositor_on_an_unsupported_edition_is_refused(vmforge: Any, tmp_path: Path) -> None:
    spec = _spec(tmp_path, 'profile = "compositor"', edition="Windows 11 Pro")
    result = vmforge("guards", "enforce", "vmft-grd-x", "--spec", str(spec))
    assert result.code == 2
    assert "windows.edition = 'Windows 11 Pro' has no specialized displays" in result.stderr
    assert "hint: specialized displays need" in result.stderr


def test_no_profile_says_so_before_touching_libvirt(vmforge: Any, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "")
    result = vmforge("guards", "check", "vmft-grd-x", "--spec", str(spec), "--connect", "qemu:///nonexistent")
    assert result.code == 2
    assert "has no guard profile" in result.stderr


def test_help_lists_both_verbs(vmforge: Any) -> None:
    result = vmforge("guards", "--help")
    assert result.code == 0 and "enforce" in result.stdout and "check" in result.stdout


def test_human_report_names_each_drift(capsys: Any) -> None:
    report = GuardReport(
        vm="w",
        operation="check",
        profile="desktop",
        results=(
            GuardResult(
                "policies",
                Status.DRIFTED,
                "user[alice]:K\\NoDispCPL: expected 1, found 0",
                items=(
                    ItemResult("user[alice]:K\\NoDispCPL", ItemState.DIFFERS, 1, 0),
                    ItemResult("machine:K\\SettingsPageVisibility", ItemState.OK, "hide:display", "hide:display"),
                ),
            ),
            GuardResult(
                "idd-desktop",
                Status.UNVERIFIED,
                "could not read desktop.attached",
                items=(ItemResult("desktop.attached", ItemState.UNKNOWN, True, None, "no desktop session"),),
                raw_output="/x/raw.txt",
            ),
        ),
    )
    render(report)
    out = capsys.readouterr().out
    assert "DRIFTED    policies" in out
    assert "· user[alice]:K\\NoDispCPL: expected 1, found 0" in out
    assert "SettingsPageVisibility" not in out  # only what differs
    assert "· desktop.attached: expected True, found unknown (no desktop session)" in out
    assert "raw output: /x/raw.txt" in out
    assert out.rstrip().endswith("0 ok, 1 drifted, 0 missing, 1 unverified")
