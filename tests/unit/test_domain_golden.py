"""Generated domain XML against reviewed golden files (VMFORGE_REGEN_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.goldencases import CASES, GOLDEN, render_case


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, tmp_path: Path) -> None:
    xml = render_case(name, tmp_path)
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("VMFORGE_REGEN_GOLDEN") == "1":
        path.write_text(xml, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with VMFORGE_REGEN_GOLDEN=1 and review it"
    assert xml == path.read_text(encoding="utf-8"), f"{name}: XML differs from {path} (regenerate on purpose only)"


def test_every_golden_file_has_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.xml")) == sorted(CASES)
