"""vmforge-managed offline snapshots: disk overlay chain + NVRAM copy + TPM state copy.

libvirt 9.0 cannot snapshot what a Windows 11 VM needs: internal snapshots of running pflash
(UEFI) guests arrived in 10.9, reverting external snapshots in 9.9, and NVRAM and TPM state are
part of no disk snapshot.  So vmforge does it itself, on a shut-off VM:

* **disk**: the VM's disk volume file is renamed to ``<stem>.snap-<label>.qcow2`` and frozen;
  a new, empty qcow2 overlay takes the old name, backed by it.  The domain XML never changes
  (its disk stays ``pool/<vm>.qcow2``), a snapshot costs no copy, and reverting deletes the top
  overlay and creates a fresh one on the frozen layer.  Every frozen layer is listed in the
  owner tag *before* it exists, so ``vmforge destroy`` removes it with the VM.
* **NVRAM** (the UEFI variable store) and the **swtpm state folder**
  (``/var/lib/libvirt/swtpm/<uuid>/``): copied, with owners and modes, into the VM's state
  folder under ``snapshots/<label>/``; their SHA-256 is recorded and checked after a restore.

The records live in the VM's ``state.json`` (``extra.snapshots``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vmforge.errors import UsageError, VmforgeError
from vmforge.images.files import copy_state, remove_state, replace_state, state_digest
from vmforge.images.vmfiles import (
    VmFiles,
    add_owned_volumes,
    owned_domain,
    require_local,
    require_shut_off,
    vm_files,
)
from vmforge.libvirt_conn import libvirt_errors
from vmforge.ownership import VolumeRef
from vmforge.state import VmDir, VmState, utc_now
from vmforge.storage import create_overlay, lookup_pool, lookup_volume, pool_path

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
STATE_KEY = "snapshots"
KNOWN_GOOD_KEY = "known_good_snapshot"


@dataclass(frozen=True)
class Snapshot:
    label: str
    created: str
    layer: VolumeRef  # the frozen disk layer
    nvram_sha256: str | None
    tpm_sha256: str | None

    def to_data(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "created": self.created,
            "layer": {"pool": self.layer.pool, "name": self.layer.name, "key": self.layer.key},
            "nvram_sha256": self.nvram_sha256,
            "tpm_sha256": self.tpm_sha256,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Snapshot:
        layer = data["layer"]
        return cls(
            label=str(data["label"]),
            created=str(data["created"]),
            layer=VolumeRef(str(layer["pool"]), str(layer["name"]), str(layer["key"])),
            nvram_sha256=data.get("nvram_sha256"),
            tpm_sha256=data.get("tpm_sha256"),
        )


def check_label(label: str) -> None:
    if not LABEL.match(label):
        raise UsageError(
            f"snapshot label {label!r} is not valid",
            hint="use 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def default_label(clock: Callable[[], datetime] = utc_now) -> str:
    return clock().strftime("%Y%m%d-%H%M%S")


def list_snapshots(vm_dir: VmDir) -> list[Snapshot]:
    state = vm_dir.load()
    if state is None:
        return []
    return [Snapshot.from_data(item) for item in state.extra.get(STATE_KEY, [])]


def known_good(vm_dir: VmDir) -> str | None:
    state = vm_dir.load()
    return None if state is None else state.extra.get(KNOWN_GOOD_KEY)


def saved_dir(vm_dir: VmDir, label: str) -> Path:
    return vm_dir.root / "snapshots" / label


def layer_name(volume: str, label: str) -> str:
    stem = volume.removesuffix(".qcow2")
    return f"{stem}.snap-{label}.qcow2"


def take_snapshot(
    conn: Any,
    name: str,
    vm_dir: VmDir,
    label: str | None = None,
    *,
    known_good_mark: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> Snapshot:
    label = label or default_label(clock)
    check_label(label)
    require_local(conn)
    dom, tag = owned_domain(conn, name)
    require_shut_off(dom, "a snapshot")
    state = vm_dir.load() or VmState(name=name)
    records = [Snapshot.from_data(item) for item in state.extra.get(STATE_KEY, [])]
    if any(record.label == label for record in records):
        raise UsageError(
            f"VM '{name}' already has a snapshot labelled '{label}'",
            hint=f"pick another label ('vmforge snapshot list {name}' shows the taken ones)",
        )
    files = vm_files(dom)
    pool = lookup_pool(conn, files.disk_pool)
    top = lookup_volume(pool, files.disk_volume) if pool is not None else None
    if pool is None or top is None:
        raise VmforgeError(
            f"the disk volume {files.disk_pool}/{files.disk_volume} of VM '{name}' is missing",
            hint=f"'vmforge destroy {name}' and create it again",
        )
    folder = pool_path(pool)
    top_path = folder / files.disk_volume
    frozen = VolumeRef(
        files.disk_pool, layer_name(files.disk_volume, label), str(folder / layer_name(files.disk_volume, label))
    )
    if Path(frozen.key).exists():
        raise VmforgeError(
            f"{frozen.key} already exists",
            hint="a snapshot with this label was left half-taken; remove that file or pick another label",
        )
    target = saved_dir(vm_dir, label)
    remove_state(target)  # a half-copied earlier attempt
    vm_dir.ensure()
    nvram_sha, tpm_sha = _save_firmware_state(files, target)
    add_owned_volumes(dom, tag, frozen)
    top_path.rename(frozen.key)  # the domain is shut off: nothing holds the file open
    try:
        create_overlay(pool, files.disk_volume, _refreshed_volume(pool, frozen))
    except BaseException:
        Path(frozen.key).rename(top_path)  # put the disk back as it was
        with libvirt_errors(f"refreshing pool {files.disk_pool}"):
            pool.refresh(0)
        raise
    Path(frozen.key).chmod(0o444)  # frozen: nothing writes it again while the VM exists
    record = Snapshot(label, clock().isoformat(timespec="seconds"), frozen, nvram_sha, tpm_sha)
    state.extra[STATE_KEY] = [*[r.to_data() for r in records], record.to_data()]
    if known_good_mark or KNOWN_GOOD_KEY not in state.extra:
        state.extra[KNOWN_GOOD_KEY] = label
    vm_dir.save(state)
    return record


def _refreshed_volume(pool: Any, ref: VolumeRef) -> Any:
    with libvirt_errors(f"refreshing pool {ref.pool}"):
        pool.refresh(0)
    volume = lookup_volume(pool, ref.name)
    if volume is None:
        raise VmforgeError(f"libvirt does not see {ref.key} after a pool refresh", hint="run the command again")
    return volume


def _save_firmware_state(files: VmFiles, target: Path) -> tuple[str | None, str | None]:
    nvram_sha = tpm_sha = None
    if files.nvram is not None and files.nvram.exists():
        copy_state(files.nvram, target / "nvram.fd")
        nvram_sha = state_digest(target / "nvram.fd")
    if files.tpm_dir is not None and files.tpm_dir.exists():
        copy_state(files.tpm_dir, target / "tpm")
        tpm_sha = state_digest(target / "tpm")
    return nvram_sha, tpm_sha


def revert(conn: Any, name: str, vm_dir: VmDir, label: str) -> Snapshot:
    """Put disk, NVRAM and TPM state back as they were when ``label`` was taken."""
    require_local(conn)
    dom, _tag = owned_domain(conn, name)
    require_shut_off(dom, "revert")
    record = next((s for s in list_snapshots(vm_dir) if s.label == label), None)
    if record is None:
        raise UsageError(
            f"VM '{name}' has no snapshot labelled '{label}'",
            hint=f"'vmforge snapshot list {name}' shows the taken ones",
        )
    files = vm_files(dom)
    pool = lookup_pool(conn, record.layer.pool)
    layer = lookup_volume(pool, record.layer.name) if pool is not None else None
    if pool is None or layer is None or str(layer.key()) != record.layer.key:
        raise VmforgeError(
            f"the frozen disk layer {record.layer.key} of snapshot '{label}' is missing",
            hint="this snapshot cannot be restored; take a new one",
        )
    top = lookup_volume(pool, files.disk_volume)
    if top is not None:
        with libvirt_errors(f"deleting the disk overlay {files.disk_volume}"):
            top.delete(0)
    create_overlay(pool, files.disk_volume, layer)
    saved = saved_dir(vm_dir, label)
    if files.nvram is not None:
        replace_state(saved / "nvram.fd" if record.nvram_sha256 else None, files.nvram)
    if files.tpm_dir is not None:
        replace_state(saved / "tpm" if record.tpm_sha256 else None, files.tpm_dir)
    _check_restored(name, label, files, record)
    return record


def _check_restored(name: str, label: str, files: VmFiles, record: Snapshot) -> None:
    checks = [("NVRAM", files.nvram, record.nvram_sha256), ("TPM state", files.tpm_dir, record.tpm_sha256)]
    for what, path, expected in checks:
        if path is not None and state_digest(path) != expected:
            raise VmforgeError(
                f"after reverting VM '{name}' to '{label}' its {what} at {path} does not match the snapshot",
                hint="the saved copy was changed since it was taken; the snapshot cannot be trusted",
            )
