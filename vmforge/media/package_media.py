"""The spec's packages on the answer media, so the guest can stage them without a network.

Layout on the media (names as in ``[[files]]``, forward slashes)::

    /vmforge/packages/SHA256SUMS               one line per file: "<sha256>  <package>/<path>"
    /vmforge/packages/<package>/<path>         the package's files, byte for byte
    /vmforge/stage-packages.ps1                copies them to the guest's staging folder

``SHA256SUMS`` is in ``sha256sum -c`` format (LF, two spaces), sorted.  The bootstrap script
runs ``stage-packages.ps1`` at first logon: each file is copied to
``C:\\ProgramData\\vmforge\\packages\\<package>\\<path>`` and kept only when its SHA-256 matches
the line.  The packages step later finds the staged copies there and copies only what is
missing or differs (over the guest agent), so the media are a shortcut, never the only way.

The files enter the image as :class:`FileOnDisk` with the sha256 the package preflight took,
so a changed package file changes the media's input hash and the media are rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmforge.media.answer_iso import FileOnDisk, MediaContent
from vmforge.packages.install import WINDOWS_STAGE_ROOT
from vmforge.packages.manifest import PackageError
from vmforge.packages.preflight import CheckedPackage
from vmforge.resources import DataFolder, data_dir

MEDIA_PACKAGES_DIR = "vmforge/packages"
SUMS_FILE = "SHA256SUMS"
STAGE_SCRIPT = "stage-packages.ps1"
STAGE_SCRIPT_TEMPLATE = f"guest/{STAGE_SCRIPT}"  # a plain PowerShell file, shipped as is
__all__ = ["MEDIA_PACKAGES_DIR", "STAGE_SCRIPT", "SUMS_FILE", "WINDOWS_STAGE_ROOT", "package_media_files"]


def sums_line(sha256: str, relative: str) -> str:
    return f"{sha256}  {relative}"


def stage_script() -> bytes:
    """``templates/guest/stage-packages.ps1`` as the guest gets it (ASCII, CRLF)."""
    text = (data_dir(DataFolder.TEMPLATES) / STAGE_SCRIPT_TEMPLATE).read_text(encoding="ascii")
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def package_media_files(checked: Sequence[CheckedPackage]) -> dict[str, MediaContent]:
    """The media entries for checked packages (empty when there are none)."""
    if not checked:
        return {}
    files: dict[str, MediaContent] = {}
    lines: list[tuple[str, str]] = []
    for item in checked:
        if item.name.casefold() == SUMS_FILE.casefold():  # Windows reads the media case-insensitively
            raise PackageError(
                f"a package named '{item.name}' cannot go on the answer media (the name of its checksum list)",
                hint="rename the package",
            )
        for check in item.files:
            relative = f"{item.name}/{check.path}"
            if not relative.isascii() or any(ord(c) < 0x20 or c == "\\" for c in relative):
                raise PackageError(
                    f"{item.name}: file name {check.path!r} cannot go on the answer media (not plain ASCII)",
                    hint="rename the file to plain ASCII (and list it so in package.toml)",
                )
            assert check.sha256 is not None  # the preflight hashed every file
            files[f"{MEDIA_PACKAGES_DIR}/{relative}"] = FileOnDisk(
                check.local, check.sha256, check.local.stat().st_size
            )
            lines.append((relative, sums_line(check.sha256, relative)))
    files[f"{MEDIA_PACKAGES_DIR}/{SUMS_FILE}"] = "".join(f"{line}\n" for _, line in sorted(lines)).encode("ascii")
    files[f"vmforge/{STAGE_SCRIPT}"] = stage_script()
    return files
