"""Storage through the libvirt storage API (no shelling out, so remote URIs work).

A directory pool vmforge creates carries the ``.vmforge-pool`` marker; a volume is vmforge's
when the owner tag of its VM's domain lists it by pool, name and key (see vmforge.ownership).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge.errors import LibvirtError, OwnershipError
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import OwnerTag, VolumeRef, mark_pool_dir
from vmforge.plan import DiskPlan, is_local_uri


def pool_xml(name: str, path: Path) -> str:
    root = etree.Element("pool", type="dir")
    etree.SubElement(root, "name").text = name
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "path").text = str(path)
    return etree.tostring(root, encoding="unicode")


def volume_xml(name: str, size: int, fmt: str) -> str:
    root = etree.Element("volume")
    etree.SubElement(root, "name").text = name
    etree.SubElement(root, "capacity", unit="bytes").text = str(size)
    target = etree.SubElement(root, "target")
    etree.SubElement(target, "format", type=fmt)
    permissions = etree.SubElement(target, "permissions")
    etree.SubElement(permissions, "mode").text = "0600"
    return etree.tostring(root, encoding="unicode")


def _missing(exc: libvirt.libvirtError, code: int) -> bool:
    return bool(exc.get_error_code() == code)


def lookup_pool(conn: Any, name: str) -> Any | None:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if _missing(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return None
        raise LibvirtError(f"looking up pool {name} failed: {exc.get_error_message()}") from None


def lookup_volume(pool: Any, name: str) -> Any | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if _missing(exc, libvirt.VIR_ERR_NO_STORAGE_VOL):
            return None
        raise LibvirtError(f"looking up volume {name} failed: {exc.get_error_message()}") from None


def pool_path(pool: Any) -> Path:
    with libvirt_errors(f"reading pool {pool.name()}"):
        root = etree.fromstring(pool.XMLDesc(0).encode())
    return Path(str(root.findtext("target/path")))


def check_qemu_can_reach(path: Path) -> None:
    """On qemu:///system QEMU runs as its own user: every existing folder above ``path`` must let
    others through (libvirt relabels the image file, never its parents)."""
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        if not folder.stat().st_mode & 0o001:
            raise LibvirtError(
                f"disk.pool_dir = '{path}': QEMU cannot reach it ({folder} is not searchable by other users)",
                hint=f"pick a folder outside private homes (default /var/lib/vmforge/images), or chmod o+x {folder}",
            )


def connection_is_local(conn: Any) -> bool:
    """Whether ``conn`` talks to this machine (its files are ours to look at)."""
    with libvirt_errors("reading the connection URI"):
        return is_local_uri(str(conn.getURI()))


def ensure_pool(conn: Any, disk: DiskPlan, system: bool = True) -> Any:
    """The pool ``disk.pool``, created (directory pool at ``disk.pool_dir``, marked) when missing,
    started when inactive.  An existing pool is used as it is and never deleted by vmforge.
    ``system``: QEMU runs as another user (qemu:///system), so the folder must be reachable.
    On a remote host (qemu+ssh://) the folder is the host's: libvirt builds it there, and it is
    neither checked nor marked from here."""
    pool = lookup_pool(conn, disk.pool)
    if pool is None:
        if disk.pool_dir is None:
            raise LibvirtError(
                f"storage pool '{disk.pool}' does not exist on the remote libvirt host",
                hint="create it there (virsh pool-define-as NAME dir --target PATH; pool-start; pool-autostart) "
                "or set disk.pool to an existing pool, or disk.pool_dir to a folder on that host",
            )
        if not connection_is_local(conn):
            return _define_remote_pool(conn, disk.pool, disk.pool_dir)
        if system:
            check_qemu_can_reach(disk.pool_dir)
        try:
            mark_pool_dir(disk.pool_dir)
            disk.pool_dir.chmod(0o755)  # QEMU (another user on qemu:///system) must traverse it
        except OSError as exc:
            raise LibvirtError(
                f"disk.pool_dir = '{disk.pool_dir}': cannot create it ({exc.strerror})",
                hint="pick a directory this user may create and QEMU may read, or run as root",
            ) from None
        with libvirt_errors(f"creating storage pool {disk.pool} at {disk.pool_dir}"):
            pool = conn.storagePoolDefineXML(pool_xml(disk.pool, disk.pool_dir), 0)
            pool.setAutostart(1)
    with libvirt_errors(f"starting storage pool {disk.pool}"):
        if not pool.isActive():
            pool.create(0)
    return pool


def _define_remote_pool(conn: Any, name: str, path: Path) -> Any:
    with libvirt_errors(f"creating storage pool {name} at {path} on the libvirt host"):
        pool = conn.storagePoolDefineXML(pool_xml(name, path), 0)
        pool.setAutostart(1)
        pool.build(0)  # mkdir on the host (a folder that exists is kept)
        pool.create(0)
    return pool


def volume_ref(pool: Any, disk: DiskPlan) -> VolumeRef:
    """The reference the owner tag records; for directory pools the key is the file's path."""
    return VolumeRef(pool=disk.pool, name=disk.volume, key=str(pool_path(pool) / disk.volume))


def check_volume_free(pool: Any, pool_name: str, name: str, owner: OwnerTag | None) -> Any | None:
    """The existing volume ``name`` if ``owner`` (the VM's tag *before* this run) lists it, None
    when there is none; a same-named volume vmforge cannot prove its own is an error."""
    volume = lookup_volume(pool, name)
    if volume is None:
        return None
    with libvirt_errors(f"reading volume {name}"):
        key = str(volume.key())
    if owner is None or not owner.owns_volume(pool_name, name, key):
        raise OwnershipError(
            f"volume '{name}' already exists in pool '{pool_name}' but vmforge did not create it for this VM",
            hint="vmforge never touches foreign volumes; remove it yourself or pick another vm.name",
        )
    return volume


def create_volume(pool: Any, disk: DiskPlan) -> Any:
    """A new qcow2 volume of ``disk.size``."""
    with libvirt_errors(f"creating volume {disk.volume} in pool {disk.pool}"):
        return pool.createXML(volume_xml(disk.volume, disk.size, disk.format), 0)


def overlay_xml(name: str, capacity: int, base_path: str, base_format: str) -> str:
    root = etree.fromstring(volume_xml(name, capacity, "qcow2").encode())
    backing = etree.SubElement(root, "backingStore")
    etree.SubElement(backing, "path").text = base_path
    etree.SubElement(backing, "format", type=base_format)
    return etree.tostring(root, encoding="unicode")


def create_overlay(pool: Any, name: str, base: Any) -> Any:
    """A qcow2 volume ``name`` whose reads fall through to ``base`` (a clone in no time).

    The base must stay unchanged while overlays exist; vmforge makes its file read-only for
    QEMU by never attaching it writable itself."""
    with libvirt_errors(f"reading base volume {base.name()}"):
        info = base.info()  # (type, capacity, allocation)
        base_root = etree.fromstring(base.XMLDesc(0).encode())
    base_format = base_root.find("target/format")
    fmt = base_format.get("type", "raw") if base_format is not None else "raw"
    with libvirt_errors(f"creating overlay {name} on {base.name()}"):
        return pool.createXML(overlay_xml(name, int(info[1]), str(base.key()), str(fmt)), 0)


UPLOAD_CHUNK = 4 * 1024**2


def upload_volume(conn: Any, pool: Any, name: str, source: Path) -> Any:
    """Copy a local file (an ISO) into a new raw volume through libvirt's stream API, so media
    reach remote hosts (qemu+ssh://) and sit where QEMU may read them.  Replaces nothing: an
    existing volume of that name is an error for the caller to resolve."""
    size = source.stat().st_size
    if lookup_volume(pool, name) is not None:
        raise OwnershipError(
            f"volume '{name}' already exists in pool '{pool.name()}'",
            hint="vmforge uploads media only into names it has not used; remove the old one first",
        )
    with libvirt_errors(f"creating volume {name} for {source}"):
        volume = pool.createXML(volume_xml(name, size, "raw"), 0)
    stream = conn.newStream(0)
    try:
        with libvirt_errors(f"uploading {source} to {pool.name()}/{name}"), source.open("rb") as handle:
            volume.upload(stream, 0, size, 0)
            while chunk := handle.read(UPLOAD_CHUNK):
                sent = 0
                while sent < len(chunk):
                    sent += stream.send(chunk[sent:])
            stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        with contextlib.suppress(libvirt.libvirtError):
            volume.delete(0)
        raise
    return volume
