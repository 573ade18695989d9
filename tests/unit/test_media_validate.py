"""The answer-file validator against real files from four projects, broken variants of them,
the peer XSD (envelope agreement) and the peer reference tables (Component.json, settings.json)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import PEERS
from tests.unit.test_media_answer import CASES, inspection, render
from vmforge.media.validate import Reference, Report, Severity, validate_bytes, validate_file

PEER_FILES = sorted((PEERS / "answer-files").glob("*.xml"))


@pytest.fixture(scope="module")
def xsd() -> etree.XMLSchema:
    path = PEERS / "unattend-schema" / "autounattend.xsd"
    if not path.exists():
        pytest.skip(f"peer test data not found at {path}")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.fixture(scope="module")
def reference() -> Reference:
    folder = PEERS / "unattend-schema"
    if not folder.exists():
        pytest.skip(f"peer test data not found at {folder}")
    return Reference.load(folder)


def test_peer_files_are_present(peers: Path) -> None:
    assert len(list((peers / "answer-files").glob("*.xml"))) == len(PEER_FILES) >= 18


@pytest.mark.parametrize("path", PEER_FILES, ids=lambda p: p.name)
def test_every_peer_answer_file_validates_without_errors(
    path: Path, xsd: etree.XMLSchema, reference: Reference
) -> None:
    assert xsd.validate(etree.parse(str(path))), "the peer XSD itself rejects this file"
    for ref in (None, reference):
        report = validate_file(path, reference=ref)
        assert report.errors == [], [str(f) for f in report.errors]


def test_reference_warnings_match_what_working_files_are_known_to_do(reference: Reference) -> None:
    """The 2018 reference lacks settings real files use: those are warnings, not errors."""
    dockur = next(p for p in PEER_FILES if p.name == "dockur-win11x64.xml")
    messages = [f.message for f in validate_file(dockur, reference=reference).warnings]
    assert any("OOBE/SkipMachineOOBE is not in the reference" in m for m in messages)
    assert any("EnhancedStorage-Adm for specialize, not oobeSystem" in m for m in messages)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_answers_pass_the_peer_schema_and_tables(
    case: str, xsd: etree.XMLSchema, reference: Reference
) -> None:
    kind, windows = CASES[case]
    text = render(kind, **dict(windows))
    assert xsd.validate(etree.fromstring(text.encode())), xsd.error_log
    report = validate_bytes(text.encode(), case, inspection(kind), reference)
    assert report.errors == []
    component_pass = [f for f in report.warnings if "Component.json" in f.message]
    assert component_pass == [], "component/pass pairs are hard rules for vmforge's own files"
    unknown = [f.message for f in report.warnings]
    assert unknown == [], unknown  # vmforge's templates use only settings the reference knows


def _sub(pattern: str, replacement: str, count: int = 1) -> Callable[[str], str]:
    def apply(text: str) -> str:
        new, n = re.subn(pattern, replacement, text, count=count)
        assert n, f"pattern {pattern!r} not found"
        return new

    return apply


def _move_setup_to_specialize(text: str) -> str:
    root = etree.fromstring(text.encode())
    ns = {"u": "urn:schemas-microsoft-com:unattend"}
    setup = root.xpath("//u:component[@name='Microsoft-Windows-Setup']", namespaces=ns)[0]
    root.xpath("//u:settings[@pass='specialize']", namespaces=ns)[0].append(setup)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8").decode()


# (name, mutation, expected message, XSD also rejects it)
BROKEN = [
    ("truncated", lambda t: t[: len(t) // 2], "not well-formed XML", True),
    ("non-ascii", _sub("<TimeZone>UTC", "<TimeZone>UT\u00c7"), "non-ASCII byte 0xc3", False),
    ("bad-pass", _sub('pass="oobeSystem"', 'pass="oobe"'), "unknown pass 'oobe'", True),
    (
        "bad-arch",
        _sub('processorArchitecture="amd64"', 'processorArchitecture="x64"'),
        "processorArchitecture is 'x64'",
        True,
    ),
    (
        "bad-token",
        _sub('publicKeyToken="31bf3856ad364e35"', 'publicKeyToken="31bf3856"'),
        "publicKeyToken is '31bf3856'",
        True,
    ),
    (
        "other-token",
        _sub('publicKeyToken="31bf3856ad364e35"', 'publicKeyToken="0123456789abcdef"'),
        "is not Microsoft's",
        False,
    ),
    ("no-language", _sub(' language="neutral"', ""), "language is missing", True),
    ("bad-scope", _sub('versionScope="nonSxS"', 'versionScope="global"'), "versionScope is 'global'", True),
    (
        "wrong-namespace",
        _sub('xmlns="urn:schemas-microsoft-com:unattend"', 'xmlns="urn:example"'),
        "root element is",
        True,
    ),
    ("setup-in-specialize", _move_setup_to_specialize, "read only in the windowsPE pass", False),
    ("no-wcm-action", _sub('<CreatePartition wcm:action="add">', "<CreatePartition>"), "has no wcm:action", False),
    ("bad-wcm-action", _sub('wcm:action="add"', 'wcm:action="append"'), 'wcm:action="append" is not add', False),
    ("bad-key", _sub(r"<Key>[0-9A-Z]{5}-[^<]*</Key>", "<Key>XXXX-YYYY</Key>"), "malformed product key", False),
]


@pytest.mark.parametrize(("name", "mutate", "message", "xsd_rejects"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_variants_fail_with_the_right_finding(
    name: str, mutate: Callable[[str], str], message: str, xsd_rejects: bool, xsd: etree.XMLSchema
) -> None:
    original = render("win11-24h2")
    broken = mutate(original)
    report = validate_bytes(broken.encode(), name)
    errors = [f for f in report.errors if message in f.message]
    assert errors, f"expected an error containing {message!r}; got {[str(f) for f in report.findings]}"
    assert all(f.xpath and f.hint for f in report.findings)
    if name != "truncated" and name != "non-ascii":
        # Agreement with the XSD: what it rejects vmforge rejects too (vmforge is stricter elsewhere).
        assert xsd.validate(etree.fromstring(broken.encode())) is (not xsd_rejects), name


@pytest.mark.parametrize("path", PEER_FILES[:6], ids=lambda p: p.name)
def test_broken_peer_files_fail_too(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = re.sub(r'pass="windowsPE"', 'pass="winPE"', text, count=1)
    assert validate_bytes(broken.encode(), path.name).errors


def _iso_report(text: str, kind: str = "win11-24h2", **changes: object) -> Report:
    iso = dataclasses.replace(inspection(kind), **changes)  # type: ignore[arg-type]
    return validate_bytes(text.encode(), "t", iso)


def test_cross_check_against_the_iso() -> None:
    text = render("win11-24h2")
    assert _iso_report(text).findings == []
    wrong_arch = _iso_report(text, arches=("x86",))
    assert any("does not match the ISO (x86)" in f.message for f in wrong_arch.errors)
    missing = _iso_report(text.replace("<Value>5</Value>", "<Value>9</Value>"))
    assert [f.message for f in missing.errors] == [
        "/IMAGE/INDEX = '9' is not in win11-24h2.iso (it holds 1: Windows 11 Home; 5: Windows 11 Pro; "
        "6: Windows 11 Education)"
    ]
    other_key = _iso_report(text.replace("VK7JG-NPHTM-C97JM-9MPGT-3V66T", "YTMG3-N6DKC-DKB77-7M9GH-8HVX7"))
    assert any("generic key of Core, but the image is Professional" in f.message for f in other_key.errors)
    server = render("server2022")
    by_name = _iso_report(server.replace("(Desktop Experience)</Value>", "(Desktop)</Value>"), "server2022")
    assert any(
        "/IMAGE/NAME = 'Windows Server 2022 Datacenter (Desktop)' is not in" in f.message for f in by_name.errors
    )


def test_peer_files_against_a_matching_iso(peers: Path) -> None:
    """rgl's Windows 11 file selects index 1 with no key: valid against a Windows 11 ISO."""
    report = validate_file(peers / "answer-files" / "rgl-windows-11-24h2-uefi.xml", inspection("win11-24h2"))
    assert report.errors == []
    arm = validate_file(
        peers / "answer-files" / "rgl-windows-11-24h2-uefi.xml",
        dataclasses.replace(inspection("win11-24h2"), arches=("arm64",)),
    )
    assert arm.errors and all(f.severity is Severity.ERROR for f in arm.errors)
