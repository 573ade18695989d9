"""Ownership on the real daemon: vmforge touches only domains carrying its owner tag."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import libvirt
import pytest

from vmforge.errors import OwnershipError
from vmforge.ownership import (
    OwnerTag,
    VolumeRef,
    domain_owner,
    list_owned_domains,
    lookup_owned_domain,
    set_domain_owner,
)
from vmforge.state import VmDir, VmState

pytestmark = pytest.mark.integration


def minimal_domain(name: str, metadata: str = "") -> str:
    meta = f"<metadata>{metadata}</metadata>" if metadata else ""
    return (
        f"<domain type='qemu'><name>{name}</name>{meta}<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )


@pytest.fixture
def define(libvirt_conn: Any):
    made: list[Any] = []

    def _define(xml: str) -> Any:
        dom = libvirt_conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        made.append(dom)
        return dom

    yield _define
    for dom in made:
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()


def tag_for(name: str) -> OwnerTag:
    return OwnerTag(
        vm=name,
        spec_hash="s" * 64,
        plan_hash="p" * 64,
        created="2026-01-01T00:00:00+00:00",
        volumes=(VolumeRef("vmforge", f"{name}.qcow2", f"/var/lib/vmforge/images/{name}.qcow2"),),
    )


def test_owner_tag_survives_the_daemon(libvirt_conn: Any, define: Any, unique_name: str) -> None:
    tag = tag_for(unique_name)
    dom = define(minimal_domain(unique_name, tag.to_xml()))
    assert domain_owner(dom) == tag
    found = lookup_owned_domain(libvirt_conn, unique_name)
    assert found is not None and found[1] == tag
    assert tag.owns_volume("vmforge", f"{unique_name}.qcow2", f"/var/lib/vmforge/images/{unique_name}.qcow2")
    assert not tag.owns_volume("vmforge", f"{unique_name}.qcow2", "/elsewhere.qcow2")


def test_foreign_domain_is_never_a_victim(libvirt_conn: Any, define: Any, unique_name: str) -> None:
    define(minimal_domain(unique_name))
    with pytest.raises(OwnershipError, match="vmforge did not create it"):
        lookup_owned_domain(libvirt_conn, unique_name)
    assert unique_name not in [d.name() for d, _ in list_owned_domains(libvirt_conn)]
    assert lookup_owned_domain(libvirt_conn, unique_name + "-absent") is None


def test_set_metadata_replaces_tag(libvirt_conn: Any, define: Any, unique_name: str) -> None:
    dom = define(minimal_domain(unique_name, tag_for(unique_name).to_xml()))
    newer = OwnerTag(vm=unique_name, spec_hash="a" * 64, plan_hash="b" * 64, created="2026-02-02T00:00:00+00:00")
    set_domain_owner(dom, newer)
    assert domain_owner(dom) == newer


def test_list_command_shows_only_owned(vmforge: Any, define: Any, unique_name: str) -> None:
    ours, foreign = unique_name, unique_name + "-foreign"
    define(minimal_domain(ours, tag_for(ours).to_xml()))
    define(minimal_domain(foreign))
    VmDir(ours).record_step(VmState(name=ours), "define")
    result = vmforge("list", "--connect", "qemu:///system", "--json")
    assert result.code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["vms"]}
    assert foreign not in rows
    assert rows[ours]["domain_state"] == "shut-off"
    assert rows[ours]["last_step"] == "define"
    assert rows[ours]["volumes"] == [f"vmforge/{ours}.qcow2"]
