"""Golden files under tests/data/golden/.  Regenerate on purpose: VMFORGE_REGEN_GOLDEN=1 pytest ..."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("VMFORGE_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return
    assert path.exists(), f"golden file {path} missing; create it with VMFORGE_REGEN_GOLDEN=1"
    expected = path.read_bytes().decode("utf-8")
    assert text == expected, f"{name} differs from its golden file; if intended, regenerate with VMFORGE_REGEN_GOLDEN=1"
