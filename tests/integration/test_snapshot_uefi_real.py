"""vmforge-managed offline snapshots of a UEFI + TPM 2.0 domain on the real daemon (libvirt 9.0).

The domain is defined by vmforge's own provision(); it is started once (OVMF, swtpm) so libvirt
creates the NVRAM file and the TPM state, then shut off.  No OS is needed: what is checked is
that revert puts back exactly the disk content, NVRAM and TPM state, by hash.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
from images_support import (  # noqa: F401 - fixture
    POOL,
    PREFIX,
    disk_content_sha,
    img_pool_dir,
    qemu_io_write,
    uefi_tpm_plan,
)

from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.shapes import Shape
from vmforge.errors import ChecksFailed, VmforgeError
from vmforge.images.files import state_digest
from vmforge.images.reprovision import check_drift, raise_on_drift, reprovision
from vmforge.images.snapshot import known_good, list_snapshots, revert, take_snapshot
from vmforge.images.vmfiles import vm_files
from vmforge.ownership import domain_owner
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration

NAME = PREFIX + "snap"


def start_and_stop(dom: Any, seconds: float = 1.0) -> None:
    start(dom)
    time.sleep(seconds)
    assert dom.isActive()
    dom.destroy()


def fingerprint(dom: Any, disk: Path, scratch: Path) -> tuple[str, str | None, str | None]:
    files = vm_files(dom)
    return disk_content_sha(disk, scratch), state_digest(files.nvram), state_digest(files.tpm_dir)


def test_snapshot_and_revert_restore_disk_nvram_and_tpm_exactly(
    system_conn: Any,
    img_pool_dir: Path,  # noqa: F811
    tmp_path: Path,
    vmforge: Any,
) -> None:
    plan = uefi_tpm_plan(system_conn, img_pool_dir, NAME)
    dom = provision(system_conn, plan, Shape.FINAL)
    vm_dir = VmDir(NAME)
    start_and_stop(dom)  # libvirt creates the NVRAM from its template, swtpm_setup the TPM state
    files = vm_files(dom)
    assert files.nvram is not None and files.nvram.is_file()
    assert files.tpm_dir is not None and any(files.tpm_dir.rglob("*.permall"))
    disk = img_pool_dir / f"{NAME}.qcow2"
    qemu_io_write(disk, 0x11, 0, 1024**2)
    first = fingerprint(dom, disk, tmp_path)

    # Refused while running, with the reason.
    start(dom)
    with pytest.raises(VmforgeError, match="not shut off: a snapshot works only on a shut-off VM"):
        take_snapshot(system_conn, NAME, vm_dir, "early")
    dom.destroy()

    # Through the real CLI: snapshot, list.
    taken = vmforge("snapshot", NAME, "base", "--connect", "qemu:///system", "--json")
    assert taken.code == 0, taken.stderr
    assert taken.json()["layer"]["name"] == f"{NAME}.snap-base.qcow2"
    frozen = img_pool_dir / f"{NAME}.snap-base.qcow2"
    frozen_sha = state_digest(frozen)
    assert fingerprint(dom, disk, tmp_path) == first  # taking it changed nothing the guest sees
    tag = domain_owner(dom)
    assert tag is not None and f"{NAME}.snap-base.qcow2" in [v.name for v in tag.volumes]

    # Damage all three: disk (through the new overlay), NVRAM, TPM state.
    qemu_io_write(disk, 0x22, 512 * 1024, 1024**2)
    with files.nvram.open("r+b") as handle:
        handle.write(b"\xde\xad\xbe\xef")
    permall = next(files.tpm_dir.rglob("*.permall"))
    permall.write_bytes(permall.read_bytes() + b"x")
    damaged = fingerprint(dom, disk, tmp_path)
    assert all(a != b for a, b in zip(damaged, first, strict=True))
    take_snapshot(system_conn, NAME, vm_dir, "damaged")

    listed = vmforge("snapshot", "list", NAME, "--json")
    assert listed.code == 0, listed.stderr
    assert [s["label"] for s in listed.json()["snapshots"]] == ["base", "damaged"]
    assert listed.json()["known_good"] == "base" == known_good(vm_dir)

    reverted = vmforge("revert", NAME, "base", "--connect", "qemu:///system")
    assert reverted.code == 0, reverted.stderr
    assert fingerprint(dom, disk, tmp_path) == first
    revert(system_conn, NAME, vm_dir, "damaged")  # the other branch of the tree is still there
    assert fingerprint(dom, disk, tmp_path) == damaged
    revert(system_conn, NAME, vm_dir, "base")
    assert fingerprint(dom, disk, tmp_path) == first
    assert state_digest(frozen) == frozen_sha  # frozen layers are never written

    start_and_stop(dom)  # QEMU and swtpm accept the restored chain and state
    missing = vmforge("revert", NAME, "nope", "--connect", "qemu:///system")
    assert missing.code == 2 and "no snapshot labelled 'nope'" in missing.stderr

    # reprovision: no drift against its own plan; a changed plan is drift; --from snapshot
    # (the known-good one, 'base') puts the damaged VM back.
    assert check_drift(system_conn, NAME, plan, vm_dir).ok
    bigger = uefi_tpm_plan(system_conn, img_pool_dir, NAME, vm={"memory": "192MiB"})
    drift = check_drift(system_conn, NAME, bigger, vm_dir)
    assert any(d.startswith("domain memory: is 131072") for d in drift.drift), drift.drift
    with pytest.raises(ChecksFailed, match="drifted: domain memory"):
        raise_on_drift(drift)
    revert(system_conn, NAME, vm_dir, "damaged")  # a TPM state swtpm refuses (CMD_INIT fails)
    result = reprovision(system_conn, NAME, plan, vm_dir, source=None, reporter=Reporter(), guest=None)
    assert result == {"name": NAME, "from": "snapshot", "snapshot": "base", "restarted": False}
    assert fingerprint(dom, disk, tmp_path) == first
    start(dom)  # starts again; a running VM is powered off, reverted and started again
    result = reprovision(system_conn, NAME, plan, vm_dir, source="snapshot", reporter=Reporter(), guest=None)
    assert result["restarted"] and dom.isActive()
    dom.destroy()

    layers = [img_pool_dir / f"{NAME}.snap-{label}.qcow2" for label in ("base", "damaged")]
    report = destroy_vm(system_conn, NAME, vm_dir)
    assert {f"volume {POOL}/{p.name}" for p in layers} <= set(report.removed)
    assert not any(p.exists() for p in [*layers, disk, files.nvram, files.tpm_dir])
    with pytest.raises(libvirt.libvirtError):
        system_conn.lookupByName(NAME)
    assert list_snapshots(vm_dir) == []
