"""The Windows clone's specialize media: a small CD holding the clone's answer file and its
WinRM certificate, attached before the clone's first boot and removed once the clone is ready.

Layout (written by vmforge's one answer-ISO writer, :mod:`vmforge.media.answer_iso`)::

    /autounattend.xml                 the clone's specialize/oobeSystem answer file
    /vmforge/clone-setup.ps1          first logon: run the listener script
    /vmforge/winrm-listener.ps1       the same WinRM set-up a created VM's bootstrap runs
    /vmforge/winrm.pfx                the clone's certificate + key (password-protected PKCS#12)
    /vmforge/winrm-pfx.txt            the PFX password (read by the script, never on a command line)

(the WinRM files come from :func:`vmforge.guest.winrm_setup.listener_media_files`; without WinRM
in ``remote.channels`` only the answer file and clone-setup.ps1 are there).

The media carries secrets (the new administrator password, the certificate's key and the PFX
password), so: the ISO in the clone's ``media/`` folder is mode 0600 from its first byte; it
reaches QEMU as a 0600 pool volume uploaded through libvirt's stream API (no path, no secret in
the domain XML or on any command line); the volume is listed in the clone's owner tag before it
exists (``destroy`` removes it); and after the clone is ready both the volume and the local ISO
are deleted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge.domain.disks import CdromDisk
from vmforge.domain.lifecycle import remove_media
from vmforge.guest.os_windows import render_script
from vmforge.guest.winrm_setup import LISTENER_SCRIPT, listener_media_files
from vmforge.images.specialize import WindowsSpecialization
from vmforge.images.vmfiles import add_owned_volumes, drop_owned_volumes, owned_domain
from vmforge.libvirt_conn import libvirt_errors
from vmforge.media.answer_iso import DEFAULT_EPOCH, build_answer_iso, inputs_digest
from vmforge.ownership import VolumeRef
from vmforge.spec import RemoteSection
from vmforge.state import VmDir, VmState, write_atomic
from vmforge.storage import lookup_volume, pool_path, upload_volume

ROLE = "specialize"  # the CD-ROM's serial: how vmforge finds its drive again
MEDIA_NAME = "clone-specialize"
STATE_KEY = "clone_media"  # VmState.extra: the attached volume, until it is removed


def media_files(special: WindowsSpecialization, remote: RemoteSection, vm_dir: VmDir) -> dict[str, bytes]:
    """What goes on the clone media (relative path -> bytes)."""
    winrm = listener_media_files(remote, vm_dir, special.computer_name)
    setup = render_script("clone-setup", listener=LISTENER_SCRIPT if winrm else "")
    # Windows PowerShell reads BOM-less scripts in the ANSI code page: ASCII, CRLF.
    return {
        "autounattend.xml": special.answer.encode("utf-8"),
        "vmforge/clone-setup.ps1": setup.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii"),
        **{f"vmforge/{name}": data for name, data in winrm.items()},
    }


def write_clone_media(vm_dir: VmDir, special: WindowsSpecialization, remote: RemoteSection | None = None) -> Path:
    """The clone media as an ISO in the clone's ``media/`` folder, created with mode 0600 (it
    never exists with a wider mode) and written atomically."""
    files = media_files(special, remote or RemoteSection(), vm_dir)
    vm_dir.ensure()
    path = vm_dir.media / f"{MEDIA_NAME}-{inputs_digest(files, DEFAULT_EPOCH)[:16]}.iso"
    write_atomic(path, build_answer_iso(files), 0o600)
    return path


def _free_sata_target(root: Any) -> str:
    used = {t.get("dev") for t in root.findall("devices/disk/target")}
    return next(f"sd{c}" for c in "abcdefghijklmnopqrstuvwxyz" if f"sd{c}" not in used)


def attach_clone_media(conn: Any, dom: Any, pool: Any, iso: Path, vm_dir: VmDir) -> VolumeRef:
    """Upload ``iso`` as ``<vm>-specialize.iso`` into ``pool`` and put it in a CD-ROM drive of
    the (shut-off) clone's persistent definition."""
    name = str(dom.name())
    ref = VolumeRef(str(pool.name()), f"{name}-{ROLE}.iso", str(pool_path(pool) / f"{name}-{ROLE}.iso"))
    _dom, tag = owned_domain(conn, name)
    add_owned_volumes(dom, tag, ref)
    state = vm_dir.load() or VmState(name=vm_dir.name)
    state.extra[STATE_KEY] = {"pool": ref.pool, "name": ref.name, "key": ref.key}
    vm_dir.save(state)
    stale = lookup_volume(pool, ref.name)
    if stale is not None:  # left by an interrupted clone: it is this VM's (listed in its tag)
        with libvirt_errors(f"deleting stale media volume {ref.name}"):
            stale.delete(0)
    upload_volume(conn, pool, ref.name, iso)
    with libvirt_errors(f"reading domain {name}"):
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    holder = etree.Element("devices")
    drive = CdromDisk((ref.pool, ref.name), _free_sata_target(root), None, ROLE).element(holder)
    with libvirt_errors(f"attaching the specialize media to {name}"):
        dom.attachDeviceFlags(etree.tostring(drive, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    return ref


def detach_clone_media(conn: Any, dom: Any, vm_dir: VmDir) -> list[str]:
    """Remove the specialize drive (config; a running guest's tray is emptied), delete its volume
    and the local ISO, and drop the volume from the owner tag.  Returns what was removed."""
    removed = [f"drive {role}" for role in remove_media(dom, (ROLE,))]
    state = vm_dir.load() or VmState(name=vm_dir.name)
    recorded = state.extra.get(STATE_KEY)
    if recorded:
        ref = VolumeRef(str(recorded["pool"]), str(recorded["name"]), str(recorded["key"]))
        with libvirt_errors(f"looking up pool {ref.pool}"):
            pool = conn.storagePoolLookupByName(ref.pool)
        volume = lookup_volume(pool, ref.name)
        if volume is not None:
            with libvirt_errors(f"deleting the specialize media volume {ref.name}"):
                volume.delete(0)
            removed.append(f"volume {ref.pool}/{ref.name}")
        _dom, tag = owned_domain(conn, str(dom.name()))
        drop_owned_volumes(dom, tag, ref)
        del state.extra[STATE_KEY]
        vm_dir.save(state)
    for iso in vm_dir.media.glob(f"{MEDIA_NAME}-*.iso"):
        iso.unlink()
        removed.append(f"file {iso.name}")
    return removed
