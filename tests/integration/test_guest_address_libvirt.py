"""Finding the guest's address through the real libvirt daemon (qemu:///system)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from vmforge.guest.remote_access import guest_address
from vmforge.guest.transport import GuestUnreachable
from vmforge.spec import parse_spec

pytestmark = pytest.mark.integration

NAME = "vmft-winrm-addr"
DOMAIN_XML = f"""<domain type='qemu'>
  <name>{NAME}</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <interface type='user'><mac address='52:54:00:7a:11:01'/><model type='virtio'/></interface>
  </devices>
</domain>"""


@pytest.fixture
def domain() -> Iterator[Any]:
    conn = libvirt.open("qemu:///system")
    dom = conn.defineXML(DOMAIN_XML)
    try:
        yield dom
    finally:
        try:
            if dom.isActive():
                dom.destroy()
        finally:
            dom.undefine()
            conn.close()


def test_every_source_is_asked_and_the_error_names_them(domain: Any) -> None:
    spec = parse_spec({"vm": {"name": NAME}}, label="test")
    with pytest.raises(GuestUnreachable) as info:
        guest_address(spec, domain)  # defined but not running: libvirt has no lease, agent or ARP entry
    assert "asked: lease, agent, arp" in info.value.message
    assert "remote.address" in (info.value.hint or "")
    only_arp = parse_spec({"vm": {"name": NAME}, "remote": {"address_sources": ["arp"]}}, label="test")
    with pytest.raises(GuestUnreachable, match=r"asked: arp\)"):
        guest_address(only_arp, domain)


def test_spec_address_wins_without_asking_libvirt() -> None:
    spec = parse_spec({"vm": {"name": NAME}, "remote": {"address": "192.0.2.44"}}, label="test")
    assert guest_address(spec, None) == "192.0.2.44"
    with pytest.raises(GuestUnreachable, match="domain is not defined"):
        guest_address(parse_spec({"vm": {"name": NAME}}, label="test"), None)
