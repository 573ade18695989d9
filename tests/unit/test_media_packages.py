"""The packages on the answer media: layout, SHA256SUMS, the staging script and its call."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.packages_support import write_idd_package
from tests.unit.test_media_bootstrap import PARSER, _errors, _script
from vmforge.media.answer_iso import FileOnDisk, inputs_digest
from vmforge.media.package_media import (
    MEDIA_PACKAGES_DIR,
    STAGE_SCRIPT,
    SUMS_FILE,
    WINDOWS_STAGE_ROOT,
    package_media_files,
    stage_script,
)
from vmforge.packages.catalog import resolve_argument
from vmforge.packages.manifest import PackageError
from vmforge.packages.preflight import Target, check_package
from vmforge.spec import parse_spec

SPEC = parse_spec({"vm": {"name": "media-pkgs"}}, label="test")
WINDOWS = Target("windows", "amd64", "Professional", 26100)


def _checked(folder: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return check_package(resolve_argument(str(write_idd_package(folder, **kwargs))), SPEC, WINDOWS)  # type: ignore[arg-type]


def test_layout_and_sums_follow_the_manifest(tmp_path: Path) -> None:
    checked = _checked(tmp_path / "testidd")
    files = package_media_files([checked])
    names = sorted(files)
    assert names == [
        f"{MEDIA_PACKAGES_DIR}/{SUMS_FILE}",
        *(f"{MEDIA_PACKAGES_DIR}/testidd/TestIdd.{ext}" for ext in ("cat", "cer", "dll", "inf")),
        f"vmforge/{STAGE_SCRIPT}",
    ]
    sums = files[f"{MEDIA_PACKAGES_DIR}/{SUMS_FILE}"]
    assert isinstance(sums, bytes)
    pinned = {f"testidd/{f.path}": f.sha256 for f in checked.package.manifest.files}
    lines = sums.decode("ascii").splitlines()
    assert lines == sorted(lines, key=lambda line: line[66:])
    assert {line[66:]: line[:64] for line in lines} == pinned  # sha256sum -c format, manifest's hashes
    assert all(re.fullmatch(r"[0-9a-f]{64}  testidd/\S+", line) for line in lines)
    entry = files[f"{MEDIA_PACKAGES_DIR}/testidd/TestIdd.dll"]
    assert isinstance(entry, FileOnDisk)  # never read into memory
    assert entry.sha256 == hashlib.sha256(entry.path.read_bytes()).hexdigest()
    assert package_media_files([]) == {}


def test_a_changed_package_file_changes_the_media_hash(tmp_path: Path) -> None:
    before = inputs_digest(package_media_files([_checked(tmp_path / "a", pin_hashes=False)]), 0)
    same = inputs_digest(package_media_files([_checked(tmp_path / "a", pin_hashes=False)]), 0)
    after = inputs_digest(package_media_files([_checked(tmp_path / "a", pin_hashes=False, dll=b"MZ v2")]), 0)
    assert before == same != after


def test_names_the_guest_cannot_take_are_refused(tmp_path: Path) -> None:
    checked = _checked(tmp_path / "testidd")
    folder = checked.package.files_dir
    (folder / "caf\u00e9.txt").write_bytes(b"x")
    text = (folder / "package.toml").read_text() + '\n[[files]]\npath = "caf\u00e9.txt"\n'
    (folder / "package.toml").write_text(text)
    with pytest.raises(PackageError, match="cannot go on the answer media"):
        package_media_files([check_package(resolve_argument(str(folder)), SPEC, WINDOWS)])


def test_stage_script_is_powershell_that_checks_every_hash() -> None:
    text = stage_script()
    tree = PARSER.parse(text)
    assert not tree.root_node.has_error, _errors(tree.root_node)
    assert text.isascii() and b"\n" not in text.replace(b"\r\n", b"")
    source = text.decode()
    assert "SHA256SUMS" in source and "ComputeHash" in source and "Get-FileHash" not in source  # PowerShell 2.0
    assert "-notmatch '^([0-9a-f]{64})  (.+)$'" in source  # the format package_media writes
    broken = source.replace("foreach ($line in", "foreach ($line of", 1)
    assert PARSER.parse(broken.encode()).root_node.has_error


def test_bootstrap_stages_packages_before_the_guest_agent() -> None:
    text = _script()
    assert f"Get-MediaRoot '{MEDIA_PACKAGES_DIR.replace('/', chr(92))}\\{SUMS_FILE}'" in text
    assert f"'vmforge\\{STAGE_SCRIPT}'" in text and f"-Destination '{WINDOWS_STAGE_ROOT}'" in text
    body = text[text.index("try {\r\n    Send-Phase") :]
    assert body.index("Copy-PackagesFromMedia") < body.index("Install-GuestAgent")
