"""windows_inputs on a real (wimtools + pycdlib) Windows-like ISO: the rendered answer file enters
the image hash, the password never does, the edition and the ISO's bytes do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vmforge.images.inputs import PASSWORD_PLACEHOLDER, input_hash, windows_inputs
from vmforge.spec import parse_spec

pytestmark = pytest.mark.integration


def _spec(iso: Path, **windows: object) -> object:
    return parse_spec({"vm": {"name": "gold"}, "windows": {"iso": str(iso), **windows}}, label="t")


def test_answer_file_and_iso_enter_the_hash_secrets_do_not(win11_iso: Path, tmp_path: Path) -> None:
    one = windows_inputs(_spec(win11_iso, password="First-Secret-1"))  # type: ignore[arg-type]
    two = windows_inputs(_spec(win11_iso, password="Second-Secret-2"))  # type: ignore[arg-type]
    assert input_hash(one) == input_hash(two)
    assert one.answer_file is not None and "<unattend" in one.answer_file
    assert "First-Secret-1" not in str(one.to_data()) and PASSWORD_PLACEHOLDER not in str(one.to_data())
    home = windows_inputs(_spec(win11_iso, edition="Windows 11 Home"))  # type: ignore[arg-type]
    assert input_hash(home) != input_hash(one)
    keyed = windows_inputs(_spec(win11_iso, product_key="NPPR9-FWDCX-D2C8J-H872K-2YT43"))  # type: ignore[arg-type]
    assert input_hash(keyed) != input_hash(one) and "NPPR9" not in str(keyed.to_data())
    copy = tmp_path / "copy.iso"
    shutil.copyfile(win11_iso, copy)
    with copy.open("r+b") as handle:  # one byte in the ISO's unused system area
        handle.seek(100)
        handle.write(b"\x01")
    assert windows_inputs(_spec(copy)).iso_sha256 != one.iso_sha256  # type: ignore[arg-type]
