"""After post-install no copy of the answer media (WinRM key, bootstrap password) is left:
the pool volume and the state-folder image on a real libvirtd, the Panther copies in the
(simulated) Windows guest over WinRM."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pools import remove_pool

from tests.integration.conftest import SYSTEM_URI, undefine_if_present
from tests.integration.test_winrm_transport import endpoint, serve, users  # noqa: F401 - a fixture
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, remove_media
from vmforge.domain.media import STATE_KEY
from vmforge.domain.shapes import Shape
from vmforge.errors import VmforgeError
from vmforge.guest.session import Guest
from vmforge.guest.winrm import WinrmTransport
from vmforge.host.facts import read_host_facts
from vmforge.media.retire import remove_answer_copies, retire_answer_media
from vmforge.plan import resolve_plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir
from vmforge.storage import lookup_pool, lookup_volume

pytestmark = pytest.mark.integration

NAME = "vmft-s2w-retire"
POOL = "vmft-s2w-pool"


@pytest.fixture
def pool_dir(system_conn: Any) -> Iterator[Path]:
    path = Path(f"/var/tmp/{POOL}-{time.monotonic_ns()}")  # QEMU must reach it: not below pytest's tmp
    try:
        yield path
    finally:
        undefine_if_present(system_conn, NAME)
        remove_pool(system_conn, POOL)
        shutil.rmtree(path, ignore_errors=True)


def _iso(path: Path, fill: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * 2048 * 16)
    return path


def test_answer_volume_and_image_go_after_detach(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "vm": {"name": NAME, "virt_type": "qemu", "memory": "256MiB", "vcpus": 1, "firmware": "bios", "tpm": "off"},
            "windows": {"family": "10", "iso": str(_iso(tmp_path / "installer.iso", b"I"))},
            "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir), "bus": "sata"},
            "network": {"type": "none"},
        },
        label="t",
    )
    plan = resolve_plan(spec, host=read_host_facts(system_conn, SYSTEM_URI, "qemu"))
    assert plan.media is not None and plan.media.answer_iso is not None
    image = _iso(plan.media.answer_iso, b"A")
    vm_dir = VmDir(NAME)
    dom = provision(system_conn, plan, Shape.POST_INSTALL, vm_dir=vm_dir)
    pool = lookup_pool(system_conn, POOL)
    assert lookup_volume(pool, f"{NAME}-answer.iso") is not None
    with pytest.raises(VmforgeError, match="still in a drive"):
        retire_answer_media(system_conn, NAME, vm_dir)
    assert image.exists()  # refused before anything was deleted

    assert "answer" in remove_media(dom)
    retired = retire_answer_media(system_conn, NAME, vm_dir)
    assert retired == [f"volume {POOL}/{NAME}-answer.iso", str(image)]
    assert lookup_volume(pool, f"{NAME}-answer.iso") is None and not image.exists()
    assert lookup_volume(pool, f"{NAME}.qcow2") is not None  # the disk stays
    state = vm_dir.load()
    assert state is not None and "answer" not in state.extra.get(STATE_KEY, {})
    assert retire_answer_media(system_conn, NAME, vm_dir) == []  # converged

    report = destroy_vm(system_conn, NAME, vm_dir)  # the tag still lists the volume: absent, not an error
    assert f"volume {POOL}/{NAME}-answer.iso" in report.absent


@pytest.mark.usefixtures("users")
def test_panther_copies_are_removed_in_the_guest(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        panther = server.guest.root / "C" / "Windows" / "Panther"
        (panther / "Unattend").mkdir(parents=True)
        (panther / "unattend.xml").write_text("<unattend/>")
        (panther / "Unattend" / "unattend.xml").write_text("<unattend/>")
        (panther / "setupact.log").write_text("log")
        transport = WinrmTransport(endpoint(server), operation_timeout=5)
        try:
            guest = Guest(transport)
            assert remove_answer_copies(guest) == [
                "C:\\Windows\\Panther\\unattend.xml",
                "C:\\Windows\\Panther\\Unattend\\unattend.xml",
            ]
            assert sorted(p.name for p in panther.rglob("*") if p.is_file()) == ["setupact.log"]
            assert remove_answer_copies(guest) == []
        finally:
            transport.close()
