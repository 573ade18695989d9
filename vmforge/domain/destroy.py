"""Removing a VM: only what is proven vmforge's, and a re-run converges.

Order matters for convergence: volumes and the shared-memory file are removed while the owner
tag that proves them ours still exists; the domain (with its NVRAM and TPM state) goes last
but one, the VM's state folder last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree
from pydantic import ValidationError

from vmforge.domain.media import is_shared_media, shared_users
from vmforge.errors import UsageError
from vmforge.ivshmem.server_daemon import stop_server
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import SHM_DIR
from vmforge.spec import VmSection
from vmforge.state import VmDir
from vmforge.storage import connection_is_local, lookup_pool, lookup_volume

UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_TPM
    | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


def _check_name(name: str) -> None:
    """NAME also names a folder that gets deleted: only names vmforge could have made pass."""
    try:
        VmSection(name=name)
    except ValidationError:
        raise UsageError(
            f"{name!r} is not a vmforge VM name",
            hint="VM names are 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ) from None


@dataclass
class DestroyReport:
    name: str
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {"name": self.name, "removed": self.removed, "kept": self.kept, "absent": self.absent}


def _remove_shared_memory(conn: Any, config: Any, shm_dir: Path, report: DestroyReport) -> None:
    """The files of the domain's ``<shmem>`` devices (QEMU leaves them behind)."""
    local = connection_is_local(conn)
    for shmem in config.findall("devices/shmem"):
        path = shm_dir / str(shmem.get("name"))
        if not local:  # on the libvirt host, where vmforge's files API does not reach
            report.kept.append(f"shared memory {path} on the remote host (remove it there)")
            continue
        try:
            path.unlink()
            report.removed.append(f"shared memory {path}")
        except FileNotFoundError:
            report.absent.append(f"shared memory {path}")


def destroy_vm(conn: Any, name: str, vm_dir: VmDir, keep_disk: bool = False, shm_dir: Path = SHM_DIR) -> DestroyReport:
    _check_name(name)
    report = DestroyReport(name)
    found = lookup_owned_domain(conn, name)  # a foreign same-named domain raises OwnershipError
    if found is None:
        report.absent.append(f"domain {name}")
    else:
        dom, tag = found
        with libvirt_errors(f"reading domain {name}"):
            config = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
            if dom.isActive():
                dom.destroy()
                report.removed.append(f"running instance of {name} (stopped)")
        disks = {
            (str(source.get("pool")), str(source.get("volume")))
            for source in config.findall("devices/disk[@device='disk']/source")
            if source.get("volume")
        }
        for ref in tag.volumes:
            label = f"volume {ref.pool}/{ref.name}"
            if keep_disk and (ref.pool, ref.name) in disks:
                report.kept.append(label)
                continue
            pool = lookup_pool(conn, ref.pool)
            volume = lookup_volume(pool, ref.name) if pool is not None else None
            if volume is None:
                report.absent.append(label)
                continue
            users = shared_users(conn, ref, besides=name) if is_shared_media(ref) else []
            if users:  # the reference count: other VMs still list this shared medium
                report.kept.append(f"{label} (shared, still used by {', '.join(users)})")
                continue
            with libvirt_errors(f"deleting {label}"):
                if str(volume.key()) != ref.key:
                    report.kept.append(f"{label} (a different volume now has this name)")
                    continue
                volume.delete(0)
            report.removed.append(label)
        _remove_shared_memory(conn, config, shm_dir, report)
        nvram = config.findtext("os/nvram")
        uuid = config.findtext("uuid")
        with libvirt_errors(f"undefining domain {name}"):
            dom.undefineFlags(UNDEFINE_FLAGS)
        report.removed.append(f"domain {name}")
        if nvram:
            report.removed.append(f"nvram {nvram}")
        if config.find("devices/tpm") is not None:
            report.removed.append(f"tpm state of {uuid}")
    if vm_dir.root.exists() and stop_server(vm_dir):  # after the domain, its only client
        report.removed.append("ivshmem server")
    if vm_dir.root.exists():
        vm_dir.remove()
        report.removed.append(f"state folder {vm_dir.root}")
    else:
        report.absent.append(f"state folder {vm_dir.root}")
    return report
