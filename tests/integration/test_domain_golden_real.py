"""Every golden domain XML against libvirt's real schema and the real daemon.

Hostdev goldens name a PCI device this machine does not have: defining works (libvirt checks
the device at start), so they are schema-validated *and* defined here, never started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import libvirt
import pytest
from lxml import etree

from tests.goldencases import CASES, GOLDEN
from tests.integration.conftest import PREFIX, undefine_if_present

pytestmark = pytest.mark.integration

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.fixture(scope="module")
def domain_rng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_is_valid_and_defines(name: str, domain_rng: etree.RelaxNG, system_conn: Any) -> None:
    path = GOLDEN / f"{name}.xml"
    root = etree.parse(str(path)).getroot()
    assert domain_rng.validate(root), f"{name}: {domain_rng.error_log}"
    tool = subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, timeout=60, check=False
    )
    assert tool.returncode == 0, tool.stdout + tool.stderr

    test_name = PREFIX + name[:40]
    root.find("name").text = test_name  # type: ignore[union-attr]
    xml = etree.tostring(root, encoding="unicode")
    undefine_if_present(system_conn, test_name)
    try:
        dom = system_conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        defined = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        # libvirt kept our owner tag and gave the VM its own NVRAM file from the chosen template.
        assert defined.find("metadata/{https://vmforge.dev/xmlns/owner/1}owner") is not None
        template = root.find("os/nvram")
        if template is not None:
            nvram = defined.find("os/nvram")
            assert nvram is not None and nvram.get("template") == template.get("template")
            assert nvram.text and nvram.text.endswith(f"/{test_name}_VARS.fd")
        assert len(defined.findall("devices/hostdev")) == len(root.findall("devices/hostdev"))
    finally:
        undefine_if_present(system_conn, test_name)
