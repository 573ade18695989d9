"""Ownership of libvirt objects: vmforge only ever touches what it created.

Domains and networks carry a ``<metadata>`` child in vmforge's XML namespace::

    <vmforge:owner xmlns:vmforge="https://vmforge.dev/xmlns/owner/1" vm="win11"
                   version="0.1.0" spec-hash="…" plan-hash="…" created="…">
      <volume pool="vmforge" name="win11.qcow2" key="/var/lib/vmforge/images/win11.qcow2"/>
    </vmforge:owner>

libvirt's storage pool and volume XML has no ``<metadata>`` element (see storagepool.rng and
storagevol.rng), so a volume is owned when the owner tag of its VM's domain lists it by pool,
name *and* key; a pool vmforge created holds a ``.vmforge-pool`` marker file in its target
directory.  ``list``, ``destroy`` and friends act only on objects proven owned this way; a
same-named foreign object is an error, never a victim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge import __version__
from vmforge.errors import OwnershipError
from vmforge.libvirt_conn import libvirt_errors

NAMESPACE = "https://vmforge.dev/xmlns/owner/1"
PREFIX = "vmforge"
POOL_MARKER = ".vmforge-pool"


@dataclass(frozen=True)
class VolumeRef:
    pool: str
    name: str
    key: str


@dataclass(frozen=True)
class OwnerTag:
    vm: str
    spec_hash: str
    plan_hash: str
    created: str
    version: str = __version__
    volumes: tuple[VolumeRef, ...] = field(default=())

    def to_xml(self, *, namespaced: bool = True) -> str:
        """The ``<vmforge:owner>`` element for a ``<metadata>`` block.

        ``namespaced=False`` gives the bare element ``setMetadata`` wants (libvirt adds the
        namespace itself).  Child elements are unqualified either way.
        """
        if namespaced:
            root = etree.Element(f"{{{NAMESPACE}}}owner", nsmap={PREFIX: NAMESPACE})
        else:
            root = etree.Element("owner")
        root.set("vm", self.vm)
        root.set("version", self.version)
        root.set("spec-hash", self.spec_hash)
        root.set("plan-hash", self.plan_hash)
        root.set("created", self.created)
        for volume in self.volumes:
            child = etree.SubElement(root, "volume")
            child.set("pool", volume.pool)
            child.set("name", volume.name)
            child.set("key", volume.key)
        return etree.tostring(root, encoding="unicode")

    def owns_volume(self, pool: str, name: str, key: str) -> bool:
        return VolumeRef(pool, name, key) in self.volumes


def read_owner(object_xml: str) -> OwnerTag | None:
    """The owner tag in a domain's or network's XML, or None when vmforge did not make it."""
    try:
        root = etree.fromstring(object_xml.encode())
    except etree.XMLSyntaxError:
        return None
    element = root.find(f"metadata/{{{NAMESPACE}}}owner")
    if element is None:
        return None
    return OwnerTag(
        vm=element.get("vm", ""),
        spec_hash=element.get("spec-hash", ""),
        plan_hash=element.get("plan-hash", ""),
        created=element.get("created", ""),
        version=element.get("version", ""),
        volumes=tuple(
            VolumeRef(v.get("pool", ""), v.get("name", ""), v.get("key", ""))
            # vmforge writes unqualified children; after setMetadata libvirt returns them qualified
            for v in [*element.findall("volume"), *element.findall(f"{{{NAMESPACE}}}volume")]
        ),
    )


def domain_owner(dom: Any) -> OwnerTag | None:
    with libvirt_errors(f"reading domain {dom.name()}"):
        return read_owner(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def lookup_owned_domain(conn: Any, name: str) -> tuple[Any, OwnerTag] | None:
    """The domain ``name`` and its tag; None if absent; OwnershipError if it is not ours."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
    tag = domain_owner(dom)
    if tag is None:
        raise OwnershipError(
            f"a domain named '{name}' exists but vmforge did not create it",
            hint="vmforge never touches foreign domains; pick another name (vm.name or NAME)",
        )
    return dom, tag


def list_owned_domains(conn: Any) -> list[tuple[Any, OwnerTag]]:
    with libvirt_errors("listing domains"):
        domains = conn.listAllDomains(0)
    owned: list[tuple[Any, OwnerTag]] = []
    for dom in domains:
        tag = domain_owner(dom)
        if tag is not None:
            owned.append((dom, tag))
    return sorted(owned, key=lambda pair: str(pair[0].name()))


def set_domain_owner(dom: Any, tag: OwnerTag) -> None:
    """Write (replace) the tag on a defined domain, live too when it runs."""
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    with libvirt_errors(f"tagging domain {dom.name()}"):
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, tag.to_xml(namespaced=False), PREFIX, NAMESPACE, flags)


def is_owned_pool_dir(path: Path) -> bool:
    return (path / POOL_MARKER).is_file()


def mark_pool_dir(path: Path, vm_version: str = __version__) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / POOL_MARKER).write_text(f"created by vmforge {vm_version}\n", encoding="utf-8")
