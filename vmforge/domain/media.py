"""Installation media as pool volumes: uploaded through libvirt's stream API, so QEMU can read
them on qemu:///system (the VM's state folder is private) and on remote hosts.

The answer media is the VM's own volume ``<vm>-answer.iso``: an upload counts as complete only
once the VM's state records it (source size and mtime), so an interrupted upload is redone.

The installer and virtio-win ISOs are the same files for many VMs: they are shared, read-only,
content-addressed volumes ``vmforge-media-<sha256>.iso``.  Every VM using one lists it in its
owner tag (that is the reference count: ``destroy`` deletes it with the last VM listing it).  The
name appears only complete: the file is uploaded to the VM's own ``<vm>-<role>.iso.part`` (also
listed in its tag, so a leftover is the VM's to remove) and copied to the shared name on the host
(``createXMLFrom``), then the part is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import libvirt

from vmforge.domain.shapes import Shape, media_roles
from vmforge.errors import OwnershipError, VmforgeError
from vmforge.libvirt_conn import libvirt_errors
from vmforge.media.checksum import file_sha256
from vmforge.ownership import OwnerTag, VolumeRef, list_owned_domains
from vmforge.plan import Plan
from vmforge.state import VmDir, VmState
from vmforge.storage import lookup_volume, upload_volume, volume_xml

STATE_KEY = "media_uploads"
SHARED_ROLES = ("installer", "virtio-win")
SHARED_PREFIX = "vmforge-media-"
PART_SUFFIX = ".part"


def media_sources(plan: Plan, shape: Shape) -> dict[str, Path]:
    """Role -> local file, for the media ``shape`` attaches (installer/virtio-win when given)."""
    if plan.media is None:
        return {}
    candidates = {
        "installer": plan.media.installer_iso,
        "answer": plan.media.answer_iso,
        "virtio-win": plan.media.virtio_win_iso,
    }
    return {role: path for role, path in candidates.items() if path is not None and role in media_roles(shape)}


def volume_name(vm: str, role: str) -> str:
    """The pool volume holding VM ``vm``'s own ``role`` media (shared media: :func:`shared_volume_name`)."""
    return f"{vm}-{role}.iso"


def media_digests(sources: Mapping[str, Path]) -> dict[str, str]:
    """sha256 of the shareable media that exist (cached per file: a 6 GB ISO is hashed once)."""
    return {role: file_sha256(path) for role, path in sources.items() if role in SHARED_ROLES and path.is_file()}


def shared_volume_name(digest: str) -> str:
    return f"{SHARED_PREFIX}{digest[:32]}.iso"


def is_shared_media(ref: VolumeRef) -> bool:
    return ref.name.startswith(SHARED_PREFIX) and ref.name.endswith(".iso")


def media_refs(
    plan: Plan, shape: Shape, pool_folder: Path | None, digests: Mapping[str, str] | None = None
) -> dict[str, VolumeRef]:
    """Role -> the volume it lives in (keys are file paths in directory pools).  Roles with a
    digest get the shared content-addressed volume."""
    refs = {}
    for role in media_sources(plan, shape):
        name = shared_volume_name(digests[role]) if digests and role in digests else volume_name(plan.name, role)
        refs[role] = VolumeRef(plan.disk.pool, name, _key(pool_folder, name))
    return refs


def part_refs(plan: Plan, refs: Mapping[str, VolumeRef], pool_folder: Path | None) -> dict[str, VolumeRef]:
    """Role -> the VM's own upload volume for each shared medium."""
    parts = {}
    for role, ref in refs.items():
        if is_shared_media(ref):
            name = f"{plan.name}-{role}.iso{PART_SUFFIX}"
            parts[role] = VolumeRef(ref.pool, name, _key(pool_folder, name))
    return parts


def _key(pool_folder: Path | None, name: str) -> str:
    return str(pool_folder / name) if pool_folder is not None else ""


def shared_users(conn: Any, ref: VolumeRef, *, besides: str) -> list[str]:
    """The vmforge VMs other than ``besides`` whose owner tag lists the shared volume ``ref``."""
    return [
        tag.vm
        for _dom, tag in list_owned_domains(conn)
        if tag.vm != besides and tag.owns_volume(ref.pool, ref.name, ref.key)
    ]


def check_shared_free(conn: Any, pool: Any, ref: VolumeRef, name: str, before: OwnerTag | None) -> None:
    """An existing shared volume must be vmforge's: listed by this VM's tag or another VM's."""
    volume = lookup_volume(pool, ref.name)
    if volume is None:
        return
    with libvirt_errors(f"reading volume {ref.name}"):
        key = str(volume.key())
    if before is not None and before.owns_volume(ref.pool, ref.name, key):
        return
    if key == ref.key and shared_users(conn, ref, besides=name):
        return
    raise OwnershipError(
        f"volume '{ref.name}' already exists in pool '{ref.pool}' but no vmforge VM lists it",
        hint="vmforge never touches foreign volumes; remove it yourself (virsh vol-delete) and run again",
    )


def check_sources(sources: dict[str, Path]) -> None:
    for role, path in sources.items():
        if not path.is_file():
            what = "the answer media has not been built yet" if role == "answer" else "no such file"
            raise VmforgeError(
                f"{role} media {path}: {what}",
                hint="build the answer media first ('vmforge create' does)" if role == "answer" else "check the path",
            )


def _fingerprint(ref: VolumeRef, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"key": ref.key, "source": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def upload_media(
    conn: Any, pool: Any, refs: dict[str, VolumeRef], sources: dict[str, Path], vm_dir: VmDir
) -> list[str]:
    """Upload each medium whose volume is missing or not recorded as completely uploaded from the
    same source; returns the roles uploaded.  Callers have checked the volumes are the VM's."""
    state = vm_dir.load() or VmState(name=vm_dir.name)
    done: dict[str, Any] = dict(state.extra.get(STATE_KEY, {}))
    uploaded = []
    for role, ref in refs.items():
        source = sources[role]
        if is_shared_media(ref):
            if upload_shared(conn, pool, ref, source, f"{vm_dir.name}-{role}.iso{PART_SUFFIX}"):
                uploaded.append(role)
            continue
        want = _fingerprint(ref, source)
        volume = lookup_volume(pool, ref.name)
        if volume is not None and done.get(role) == want:
            continue
        if volume is not None:  # an interrupted or outdated upload
            with libvirt_errors(f"deleting stale media volume {ref.name}"):
                volume.delete(0)
        done.pop(role, None)
        upload_volume(conn, pool, ref.name, source)
        done[role] = want
        state.extra[STATE_KEY] = done
        vm_dir.save(state)
        uploaded.append(role)
    return uploaded


def upload_shared(conn: Any, pool: Any, ref: VolumeRef, source: Path, part: str) -> bool:
    """Make the shared volume ``ref`` from ``source`` unless it exists (it is complete whenever
    it exists); True when it was made here."""
    if lookup_volume(pool, ref.name) is not None:
        return False
    stale = lookup_volume(pool, part)
    if stale is not None:  # an upload of this VM that was interrupted
        with libvirt_errors(f"deleting the interrupted upload {part}"):
            stale.delete(0)
    uploaded = upload_volume(conn, pool, part, source)
    try:
        with libvirt_errors(f"copying {part} to the shared volume {ref.name}"):
            try:
                pool.createXMLFrom(volume_xml(ref.name, source.stat().st_size, "raw"), uploaded, 0)
            except libvirt.libvirtError:
                if lookup_volume(pool, ref.name) is None:
                    raise
                return False  # another VM made it meanwhile
    finally:
        with libvirt_errors(f"deleting {part}"):
            uploaded.delete(0)
    return True
