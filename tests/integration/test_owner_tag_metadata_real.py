"""The owner tag survives libvirt's setMetadata (which namespace-qualifies the children)."""

from __future__ import annotations

from typing import Any

import pytest

from vmforge.ownership import OwnerTag, VolumeRef, domain_owner, set_domain_owner

pytestmark = pytest.mark.integration


def test_volumes_read_back_after_set_metadata(system_conn: Any) -> None:
    xml = (
        "<domain type='qemu'><name>vmft-img-meta</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
    dom = system_conn.defineXML(xml)
    try:
        tag = OwnerTag("vmft-img-meta", "s", "p", "c", volumes=(VolumeRef("pool", "a.qcow2", "/x/a.qcow2"),))
        set_domain_owner(dom, tag)
        assert domain_owner(dom) == tag
    finally:
        dom.undefine()
