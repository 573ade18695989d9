"""The compositor's edition check in the create preflight, from a real ISO's install.wim.

wimtools writes a real WIM with EditionID metadata, pycdlib a UDF ISO laid out like Microsoft's;
vmforge's ISO inspection reads the edition and build that the package preflight judges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.media_factory import FakeImage, build_iso, build_wim
from vmforge.media.iso_inspect import inspect_iso
from vmforge.packages.manifest import PackageError
from vmforge.packages.preflight import preflight_packages, target_from_inspection
from vmforge.spec import Spec, parse_spec

pytestmark = pytest.mark.integration


def test_compositor_needs_an_edition_with_specialized_displays(tmp_path: Path) -> None:
    wim = build_wim(
        tmp_path / "install.wim",
        [
            FakeImage("Windows 11 Pro", "Professional", 26100),
            FakeImage("Windows 11 Enterprise", "Enterprise", 26100),
            FakeImage("Windows 11 Pro for Workstations", "ProfessionalWorkstation", 26100),
        ],
    )
    inspection = inspect_iso(build_iso(tmp_path / "win.iso", {"sources/install.wim": wim}))
    files = tmp_path / "compositor"
    files.mkdir()
    (files / "compositor.msi").write_bytes(b"stand-in")

    def spec_for(edition: str) -> Spec:
        return parse_spec(
            {"windows": {"edition": edition}, "packages": [{"name": "compositor", "path": str(files)}]}, label="t"
        )

    pro = spec_for("Windows 11 Pro")
    target = target_from_inspection(pro, inspection)
    assert (target.os_family, target.arch, target.edition_id, target.build) == (
        "windows",
        "amd64",
        "Professional",
        26100,
    )
    with pytest.raises(PackageError, match=r"^compositor: edition 'Professional' cannot run it; it needs Enterprise"):
        preflight_packages(pro, inspection)
    for edition in ("Windows 11 Enterprise", "Windows 11 Pro for Workstations"):
        checked = preflight_packages(spec_for(edition), inspection)
        assert [c.name for c in checked] == ["compositor"]


def test_cli_install_refuses_a_vm_vmforge_does_not_own(vmforge: Any) -> None:
    """'vmforge packages install' checks the packages, then finds no vmforge VM: nothing copied."""
    missing = vmforge("packages", "install", "vmft-pkg-absent", "mttvdd", "--connect", "qemu:///system")
    assert missing.code == 1
    assert "no vmforge VM named 'vmft-pkg-absent' at qemu:///system" in missing.stderr
    unknown = vmforge("packages", "install", "vmft-pkg-absent", "nope", "--connect", "qemu:///system")
    assert unknown.code == 2 and "no package 'nope'" in unknown.stderr
