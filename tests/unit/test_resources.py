"""Templates, answer files and package descriptors are found from a checkout and from a wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vmforge.resources import DataFolder, data_dir

REPO = Path(__file__).resolve().parents[2]


def test_found_in_checkout() -> None:
    for folder in DataFolder:
        assert data_dir(folder) == REPO / folder.value


def test_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "templates").mkdir()
    monkeypatch.setenv("VMFORGE_DATA_DIR", str(tmp_path))
    assert data_dir(DataFolder.TEMPLATES) == tmp_path / "templates"


@pytest.mark.slow
def test_found_in_wheel(tmp_path: Path) -> None:
    """Build the real wheel, unpack it away from the checkout, and ask the unpacked package."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("vmforge-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert "vmforge/_data/templates/spec/starter.toml.j2" in names
    code = (
        "from vmforge.resources import DataFolder, data_dir\n"
        "from vmforge.templating import render_template\n"
        "for f in DataFolder: print(data_dir(f))\n"
        "print(len(render_template('spec/starter.toml.j2', name='w', path_name='x')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n" + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    lines = out.stdout.splitlines()
    for line, folder in zip(lines, DataFolder, strict=False):
        assert line == str(site / "vmforge" / "_data" / folder.value)
    assert int(lines[-1]) > 100
