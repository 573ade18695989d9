"""Shared, content-addressed installer/virtio-win volumes on the real libvirtd: uploaded once for
two VMs, attached to both while they run (TCG), kept while another VM's owner tag lists them,
deleted with the last; an interrupted upload is redone; a foreign volume of that name is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from pools import remove_pool

from tests.integration.conftest import SYSTEM_URI, undefine_if_present
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.media import shared_volume_name
from vmforge.domain.shapes import Shape
from vmforge.errors import OwnershipError
from vmforge.hashing import sha256_file
from vmforge.host.facts import read_host_facts
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir
from vmforge.storage import lookup_pool, lookup_volume, volume_xml

pytestmark = pytest.mark.integration

PREFIX = "vmft-s2d-share"
POOL = PREFIX + "pool"
POOL_DIR = Path(f"/var/tmp/{POOL}")
A, B, C = PREFIX + "a", PREFIX + "b", PREFIX + "c"


@pytest.fixture
def conn() -> Iterator[Any]:
    conn = libvirt.open(SYSTEM_URI)
    try:
        yield conn
    finally:
        for name in (A, B, C):
            undefine_if_present(conn, name)
        remove_pool(conn, POOL)
        conn.close()
        shutil.rmtree(POOL_DIR, ignore_errors=True)


def iso(path: Path, fill: bytes, blocks: int = 256) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * 2048 * blocks)
    return path


def plan_for(conn: Any, name: str, installer: Path, virtio: Path) -> Plan:
    spec = parse_spec(
        {
            "vm": {"name": name, "virt_type": "qemu", "memory": "256MiB", "vcpus": 1, "firmware": "bios", "tpm": "off"},
            "windows": {"family": "7", "iso": str(installer)},
            "virtio_win": {"iso": str(virtio)},
            "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(POOL_DIR)},
            "network": {"type": "none"},
            "display": {"vnc": False},
        },
        label="t",
    )
    plan = resolve_plan(spec, host=read_host_facts(conn, SYSTEM_URI, "qemu"))
    iso(plan.media.answer_iso, name[-1].encode(), 16)  # type: ignore[union-attr] # the media step's output
    return plan


def test_two_vms_share_one_upload_until_the_last_is_destroyed(conn: Any, tmp_path: Path) -> None:
    installer, virtio = iso(tmp_path / "win.iso", b"W"), iso(tmp_path / "virtio.iso", b"V", 64)
    shared = [shared_volume_name(sha256_file(path)) for path in (installer, virtio)]
    files = [POOL_DIR / name for name in shared]

    dom_a = provision(conn, plan_for(conn, A, installer, virtio), Shape.INSTALL)
    assert [f.read_bytes() for f in files] == [installer.read_bytes(), virtio.read_bytes()]
    made = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in files]
    dom_b = provision(conn, plan_for(conn, B, installer, virtio), Shape.INSTALL)
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in files] == made  # not uploaded again
    assert sorted(p.name for p in POOL_DIR.iterdir() if p.name.endswith(".part")) == []
    own = sorted(p.name for p in POOL_DIR.iterdir() if not p.name.startswith("."))
    assert own == sorted([*shared, f"{A}.qcow2", f"{A}-answer.iso", f"{B}.qcow2", f"{B}-answer.iso"])

    start(dom_a)
    start(dom_b)  # both attach the same read-only volumes
    assert dom_a.isActive() and dom_b.isActive()

    report = destroy_vm(conn, A, VmDir(A))
    assert sorted(report.kept) == sorted(f"volume {POOL}/{name} (shared, still used by {B})" for name in shared)
    assert all(f.is_file() for f in files) and dom_b.isActive()
    report = destroy_vm(conn, B, VmDir(B))
    assert {f"volume {POOL}/{name}" for name in shared} <= set(report.removed) and report.kept == []
    assert not any(f.exists() for f in files)


def test_interrupted_upload_is_redone_and_a_foreign_volume_refused(conn: Any, tmp_path: Path) -> None:
    installer, virtio = iso(tmp_path / "win.iso", b"X"), iso(tmp_path / "virtio.iso", b"Y", 64)
    plan = plan_for(conn, A, installer, virtio)
    provision(conn, plan, Shape.INSTALL)
    pool = lookup_pool(conn, POOL)
    # As after a crash mid-upload: the shared volume never appeared, a partial upload is left.
    lookup_volume(pool, shared_volume_name(sha256_file(installer))).delete(0)
    pool.createXML(volume_xml(f"{A}-installer.iso.part", 4096, "raw"), 0)
    provision(conn, plan, Shape.INSTALL)
    assert (POOL_DIR / shared_volume_name(sha256_file(installer))).read_bytes() == installer.read_bytes()
    assert lookup_volume(pool, f"{A}-installer.iso.part") is None

    other = iso(tmp_path / "other.iso", b"Z")
    foreign = shared_volume_name(sha256_file(other))
    pool.createXML(volume_xml(foreign, 2048, "raw"), 0)  # made outside vmforge, listed by no VM
    with pytest.raises(OwnershipError, match=f"volume '{foreign}' already exists .* no vmforge VM lists it"):
        provision(conn, plan_for(conn, C, other, virtio), Shape.INSTALL)
    assert lookup_volume(pool, foreign) is not None
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(C)  # refused before anything was defined
    destroy_vm(conn, A, VmDir(A))
    assert lookup_volume(pool, shared_volume_name(sha256_file(virtio))) is None
