"""``vmforge domain xml`` and ``vmforge destroy`` as users run them, against the real daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest
from lxml import etree

from tests.integration.conftest import NAME, PREFIX, probe_plan
from vmforge.domain.lifecycle import provision
from vmforge.domain.shapes import Shape

pytestmark = pytest.mark.integration

RNG = etree.RelaxNG(etree.parse("/usr/share/libvirt/schemas/domain.rng"))


def test_domain_xml_without_iso(vmforge: Any) -> None:
    result = vmforge("domain", "xml", "--set", "windows.family=11", "--set", f"vm.name={PREFIX}cli")
    assert result.code == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    assert RNG.validate(root), RNG.error_log
    assert root.findtext("name") == f"{PREFIX}cli"
    assert root.find("os/loader").get("secure") == "yes"  # type: ignore[union-attr]
    assert root.find("devices/tpm") is not None
    assert root.findtext("on_reboot") == "destroy"


def test_domain_xml_final_json_and_phase_alias(vmforge: Any) -> None:
    result = vmforge("domain", "xml", "--set", "windows.family=10", "--phase", "final", "--json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["shape"] == "final" and data["name"] == "win"
    assert "cdrom" not in data["xml"]


def test_domain_xml_errors(vmforge: Any) -> None:
    no_family = vmforge("domain", "xml")
    assert no_family.code == 2 and "windows.family" in no_family.stderr
    bad_uri = vmforge("domain", "xml", "--set", "windows.family=10", "--set", "vm.connect=nope:///x")
    assert bad_uri.code == 2 and "vm.connect" in bad_uri.stderr
    no_gpu = vmforge("domain", "xml", "--set", "windows.family=10", "--set", 'gpu.devices=["0000:7f:00.0"]')
    assert no_gpu.code == 2 and "0000:7f:00.0 does not exist" in no_gpu.stderr


def test_destroy_cli_converges_and_refuses_foreign(vmforge: Any, system_conn: Any, pool_dir: Path) -> None:
    provision(system_conn, probe_plan(system_conn, pool_dir), Shape.INSTALL)
    first = vmforge("destroy", NAME, "--json")
    assert first.code == 0, first.stderr
    assert f"domain {NAME}" in first.json()["removed"]
    again = vmforge("destroy", NAME, "--json")
    assert again.code == 0 and again.json()["removed"] == []

    system_conn.defineXML(
        f"<domain type='qemu'><name>{NAME}</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
    foreign = vmforge("destroy", NAME)
    assert foreign.code == 1 and "vmforge did not create it" in foreign.stderr
    assert system_conn.lookupByName(NAME).isPersistent()
    with pytest.raises(libvirt.libvirtError):
        system_conn.lookupByName(NAME + "-nope")


def test_destroy_refuses_names_vmforge_never_makes(vmforge: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    result = vmforge("destroy", "../../outside", "--json")
    assert result.code == 2 and "not a vmforge VM name" in result.json()["error"]["message"]
    assert outside.is_dir()
