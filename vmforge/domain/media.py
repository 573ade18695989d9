"""Installation media as pool volumes: uploaded through libvirt's stream API, so QEMU can read
them on qemu:///system (the VM's state folder is private) and on remote hosts.

Each VM gets its own volumes ``<vm>-installer.iso``, ``<vm>-answer.iso``, ``<vm>-virtio-win.iso``,
listed in its owner tag (so ``destroy`` removes them).  An upload counts as complete only once
the VM's state records it (source size and mtime), so an interrupted upload is redone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmforge.domain.shapes import Shape, media_roles
from vmforge.errors import VmforgeError
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import VolumeRef
from vmforge.plan import Plan
from vmforge.state import VmDir, VmState
from vmforge.storage import lookup_volume, upload_volume

STATE_KEY = "media_uploads"


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
    """The pool volume holding VM ``vm``'s ``role`` media."""
    return f"{vm}-{role}.iso"


def media_refs(plan: Plan, shape: Shape, pool_folder: Path | None) -> dict[str, VolumeRef]:
    """Role -> the volume it lives in (keys are file paths in directory pools)."""
    refs = {}
    for role in media_sources(plan, shape):
        name = volume_name(plan.name, role)
        key = str(pool_folder / name) if pool_folder is not None else ""
        refs[role] = VolumeRef(plan.disk.pool, name, key)
    return refs


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
