"""vmforge's shipped unattend reference data: generated from the peer references (a test keeps
it true), used by the validator without ../shared, and the envelope code agrees with the XSD."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_media_answer import inspection, render
from vmforge.errors import VmforgeError
from vmforge.media import refdata
from vmforge.media import unattend_rules as rules
from vmforge.media.validate import Reference, validate_bytes


def test_shipped_data_is_what_the_generator_makes_from_the_peer_references(peers: Path) -> None:
    source = peers / "unattend-schema"
    assert refdata.render(refdata.generate(source)) == refdata.DATA_FILE.read_text(encoding="utf-8"), (
        "regenerate: python -m vmforge.media.refdata ../shared/peers/unattend-schema"
    )


def test_shipped_data_names_its_sources_and_licences() -> None:
    data = refdata.load_builtin()
    assert list(data)[:2] == ["attribution", "sources"]
    assert set(data["sources"]) == {"Component.json", "settings.json", "autounattend.xsd"}
    licences = {name: info["licence"] for name, info in data["sources"].items()}
    assert licences["settings.json"].startswith("CC BY 4.0") and licences["Component.json"].startswith("MIT")
    assert all(re.fullmatch(r"[0-9a-f]{64}", info["sha256"]) for info in data["sources"].values())
    assert "cschneegans/unattend-generator" in data["sources"]["Component.json"]["origin"]
    assert len(data["component_passes"]) > 80 and sum(len(s) for s in data["settings"].values()) > 1000


def test_the_validator_uses_the_shipped_data_by_default() -> None:
    text = render("win11-24h2")
    text = text.replace("<HideEULAPage>", "<HideEulaPageTypo>", 1).replace("</HideEULAPage>", "</HideEulaPageTypo>", 1)
    report = validate_bytes(text.encode(), "typo", inspection("win11-24h2"))
    assert report.errors == []
    assert [f.message for f in report.warnings] == [
        "setting OOBE/HideEulaPageTypo is not in the reference for Microsoft-Windows-Shell-Setup"
    ]
    clean = validate_bytes(render("win11-24h2").encode(), "clean", inspection("win11-24h2"))
    assert clean.findings == []
    assert Reference.builtin().component_passes["microsoft-windows-setup"] == ("windowsPE",)


# Values the envelope code and the XSD's patterns must judge alike (the XSD's patterns are
# implicitly anchored: fullmatch).
PROBES = {
    "processorArchitectureType": (
        rules.ARCH_RE,
        ["amd64", "AMD64", "x86", "wow64", "arm64", "ARM64", "arm", "neutral", "msil", "data", "ia64", "shx",
         "x64", "amd", "arm65", "", "amd64 ", "x86_64"],
    ),
    "publicKeyTokenType": (
        rules.TOKEN_RE,
        ["31bf3856ad364e35", "31BF3856AD364E35", "0123456789abcdef", "31bf3856", "31bf3856ad364e3g", "",
         "31bf3856ad364e351"],
    ),
    "versionScopeType": (rules.VERSION_SCOPE_RE, ["nonSxS", "NONSXS", "neutral", "Neutral", "global", "", "sxs"]),
    "fourPartVersionType": (
        rules.FOUR_PART_VERSION_RE,
        ["10.0.0.0", "6.1.7601.0", "65535.0.0.1", "065535.1.2.3", "65536.0.0.0", "1.2.3", "1.2.3.4.5", "a.b.c.d",
         "...", "99999.0.0.0"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("xsd_type", sorted(PROBES))
def test_envelope_code_agrees_with_the_xsd_patterns(xsd_type: str) -> None:
    pattern = refdata.load_builtin()["xsd"]["patterns"][xsd_type]
    own, values = PROBES[xsd_type]
    for value in values:
        assert bool(own.match(value)) == bool(re.fullmatch(pattern, value)), (xsd_type, value)


def test_pass_names_agree_with_the_xsd() -> None:
    assert list(refdata.load_builtin()["xsd"]["passes"]) == sorted(
        (*rules.PASSES, *rules.SCHEMA_ONLY_PASSES), key=refdata.load_builtin()["xsd"]["passes"].index
    )
    assert set(refdata.load_builtin()["xsd"]["passes"]) == {*rules.PASSES, *rules.SCHEMA_ONLY_PASSES}


def test_generator_cli_check_and_errors(peers: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.json"
    root = Path(refdata.__file__).resolve().parents[2]
    command = [sys.executable, "-m", "vmforge.media.refdata", str(peers / "unattend-schema"), "-o", str(out)]
    assert subprocess.run(command, capture_output=True, timeout=60, check=False, cwd=root).returncode == 0
    assert out.read_text() == refdata.DATA_FILE.read_text()
    assert subprocess.run([*command, "--check"], capture_output=True, timeout=60, check=False, cwd=root).returncode == 0
    out.write_text(out.read_text().replace('"windowsPE"', '"windowsPe"', 1))
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=60, check=False, cwd=root)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(peers / "unattend-schema" / "Component.json", partial)
    shutil.copy(peers / "unattend-schema" / "autounattend.xsd", partial)
    with pytest.raises(VmforgeError, match=r"cannot read the reference file .*partial/settings\.json \(No such file"):
        refdata.generate(partial)
