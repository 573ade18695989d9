"""Find the data folders (templates/, answer-files/, guest-drivers/) in a checkout or a wheel.

In a checkout they sit beside the ``vmforge`` package (the design's layout); a wheel ships them
inside the package as ``vmforge/_data/<folder>`` (see pyproject.toml).  ``VMFORGE_DATA_DIR``
points at another root holding the same folders (for users who keep their own templates).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from vmforge.errors import VmforgeError


class DataFolder(StrEnum):
    TEMPLATES = "templates"
    ANSWER_FILES = "answer-files"
    GUEST_DRIVERS = "guest-drivers"


_PACKAGE_DIR = Path(__file__).resolve().parent


def data_roots() -> list[Path]:
    """Candidate roots, most specific first."""
    roots: list[Path] = []
    override = os.environ.get("VMFORGE_DATA_DIR")
    if override:
        roots.append(Path(override))
    roots.append(_PACKAGE_DIR / "_data")  # installed wheel
    roots.append(_PACKAGE_DIR.parent)  # checkout / editable install
    return roots


def data_dir(folder: DataFolder) -> Path:
    for root in data_roots():
        candidate = root / folder.value
        if candidate.is_dir():
            return candidate
    searched = ", ".join(str(r / folder.value) for r in data_roots())
    raise VmforgeError(
        f"vmforge's {folder.value} folder is missing (looked in {searched})",
        hint="reinstall vmforge, or set VMFORGE_DATA_DIR to a folder that holds it",
    )


def data_file(folder: DataFolder, relative: str) -> Path:
    path = data_dir(folder) / relative
    if not path.is_file():
        raise VmforgeError(
            f"{folder.value}/{relative} is missing from {data_dir(folder)}",
            hint="reinstall vmforge, or set VMFORGE_DATA_DIR to a folder that holds it",
        )
    return path
