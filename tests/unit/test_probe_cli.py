"""``vmforge probe`` usage errors, through the real CLI (no daemon is reached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_unknown_builtin_spec_is_a_usage_error(vmforge: Any) -> None:
    result = vmforge("probe", "nosuch")
    assert result.code == 2
    assert "no built-in probe spec 'nosuch'" in result.stderr and "demo" in result.stderr


def test_name_and_spec_together_are_refused(vmforge: Any, tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('os = "probe"\n')
    result = vmforge("probe", "demo", "--spec", str(spec))
    assert result.code == 2
    assert "either NAME or --spec" in result.stderr


def test_builtin_demo_spec_is_a_valid_probe_spec(vmforge: Any) -> None:
    from vmforge.cli.probe_cmd import BUILTIN_SPECS

    result = vmforge("spec", "validate", "--spec", str(BUILTIN_SPECS["demo"]))
    assert result.code == 0, result.stderr
