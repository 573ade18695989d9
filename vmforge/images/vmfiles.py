"""Where a shut-off vmforge VM keeps its three pieces of state: system disk, NVRAM, TPM."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge.errors import UsageError, VmforgeError
from vmforge.images.files import SWTPM_STATE_ROOT
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import OwnerTag, VolumeRef, lookup_owned_domain, set_domain_owner
from vmforge.plan import is_local_uri


@dataclass(frozen=True)
class VmFiles:
    name: str
    uuid: str
    disk_pool: str
    disk_volume: str
    nvram: Path | None  # None: BIOS firmware
    tpm_dir: Path | None  # None: no emulated TPM


def owned_domain(conn: Any, name: str) -> tuple[Any, OwnerTag]:
    found = lookup_owned_domain(conn, name)
    if found is None:
        raise UsageError(f"there is no vmforge VM named '{name}'", hint="'vmforge list' shows the VMs vmforge made")
    return found


def require_local(conn: Any) -> None:
    with libvirt_errors("reading the connection URI"):
        uri = str(conn.getURI())
    if not is_local_uri(uri):
        raise UsageError(
            f"snapshots, images and clones copy NVRAM and TPM state files: that needs the libvirt host "
            f"itself ({uri} is remote)",
            hint="run vmforge on the libvirt host (qemu:///system)",
        )


def require_shut_off(dom: Any, action: str) -> None:
    with libvirt_errors(f"reading the state of {dom.name()}"):
        state = dom.state()[0]
    if state != libvirt.VIR_DOMAIN_SHUTOFF:
        raise VmforgeError(
            f"VM '{dom.name()}' is not shut off: {action} works only on a shut-off VM "
            "(libvirt 9.0 cannot snapshot a running UEFI guest's firmware and TPM state)",
            hint=f"shut it down first (in the guest, or 'virsh shutdown {dom.name()}'), then run this again",
        )


def vm_files(dom: Any) -> VmFiles:
    with libvirt_errors(f"reading domain {dom.name()}"):
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    source = root.find("devices/disk[@device='disk']/source")
    if source is None or not source.get("volume"):
        raise VmforgeError(
            f"VM '{dom.name()}' has no system disk volume",
            hint="only VMs vmforge provisioned (disk as a pool volume) have snapshots and images",
        )
    uuid = str(root.findtext("uuid"))
    nvram = root.findtext("os/nvram")
    tpm = root.find("devices/tpm/backend[@type='emulator']")
    return VmFiles(
        name=str(dom.name()),
        uuid=uuid,
        disk_pool=str(source.get("pool")),
        disk_volume=str(source.get("volume")),
        nvram=Path(nvram) if nvram else None,
        tpm_dir=SWTPM_STATE_ROOT / uuid if tpm is not None else None,
    )


def add_owned_volumes(dom: Any, tag: OwnerTag, *refs: VolumeRef) -> OwnerTag:
    """List ``refs`` in the domain's owner tag (before they exist, so destroy finds them)."""
    volumes = tuple(dict.fromkeys((*tag.volumes, *refs)))
    if volumes == tag.volumes:
        return tag
    new = dataclasses.replace(tag, volumes=volumes)
    set_domain_owner(dom, new)
    return new


def drop_owned_volumes(dom: Any, tag: OwnerTag, *refs: VolumeRef) -> OwnerTag:
    new = dataclasses.replace(tag, volumes=tuple(v for v in tag.volumes if v not in refs))
    if new != tag:
        set_domain_owner(dom, new)
    return new
