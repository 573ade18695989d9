"""Provision, start and destroy a real domain under TCG: UEFI (NVRAM), TPM, ivshmem, owned volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest
from lxml import etree

from tests.integration.conftest import NAME, POOL, PREFIX, SHM, SYSTEM_URI, probe_plan, undefine_if_present
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, remove_media, send_keys, start, wait_for_stop
from vmforge.domain.media import media_digests, media_refs, media_sources, shared_volume_name, upload_media
from vmforge.domain.shapes import Shape
from vmforge.errors import LibvirtError, OwnershipError, VmforgeError
from vmforge.hashing import sha256_file
from vmforge.host.facts import read_host_facts
from vmforge.ownership import domain_owner, is_owned_pool_dir
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import Firmware, parse_spec
from vmforge.state import VmDir
from vmforge.storage import lookup_pool, lookup_volume

pytestmark = pytest.mark.integration


def test_provision_start_destroy_leaves_nothing(system_conn: Any, pool_dir: Path) -> None:
    plan = probe_plan(system_conn, pool_dir)
    dom = provision(system_conn, plan, Shape.INSTALL)
    # Idempotent: the same plan again changes nothing.
    before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    dom = provision(system_conn, plan, Shape.INSTALL)
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    assert is_owned_pool_dir(pool_dir)

    tag = domain_owner(dom)
    assert tag is not None and [(v.pool, v.name) for v in tag.volumes] == [(POOL, f"{NAME}.qcow2")]
    volume_path = Path(tag.volumes[0].key)
    assert volume_path == pool_dir / f"{NAME}.qcow2" and volume_path.is_file()

    start(dom)
    assert dom.isActive()
    config = etree.fromstring(dom.XMLDesc(0).encode())
    nvram = Path(str(config.findtext("os/nvram")))
    swtpm = Path("/var/lib/libvirt/swtpm", str(config.findtext("uuid")))
    shm = Path("/dev/shm", SHM)
    assert nvram.is_file() and swtpm.is_dir() and shm.exists()
    assert shm.stat().st_size == plan.ivshmem.size  # type: ignore[union-attr]
    assert config.find("os/nvram").get("template", "").endswith("VARS_4M.fd")  # type: ignore[union-attr]

    vm_dir = VmDir(NAME)
    assert vm_dir.root.is_dir()  # the serial log lives there
    report = destroy_vm(system_conn, NAME, vm_dir)
    assert f"domain {NAME}" in report.removed and f"volume {POOL}/{NAME}.qcow2" in report.removed

    with pytest.raises(libvirt.libvirtError):
        system_conn.lookupByName(NAME)
    pool = lookup_pool(system_conn, POOL)
    assert pool is not None and lookup_volume(pool, f"{NAME}.qcow2") is None
    assert not volume_path.exists() and not nvram.exists() and not swtpm.exists() and not shm.exists()
    assert not vm_dir.root.exists()

    # Re-running converges: nothing left to remove, no error.
    again = destroy_vm(system_conn, NAME, vm_dir)
    assert again.removed == [] and f"domain {NAME}" in again.absent


def test_keep_disk_keeps_only_the_volume(system_conn: Any, pool_dir: Path) -> None:
    plan = probe_plan(system_conn, pool_dir)
    provision(system_conn, plan, Shape.FINAL)
    report = destroy_vm(system_conn, NAME, VmDir(NAME), keep_disk=True)
    assert report.kept == [f"volume {POOL}/{NAME}.qcow2"]
    assert (pool_dir / f"{NAME}.qcow2").is_file()
    # The kept volume is no longer proven ours: provisioning again refuses to adopt it.
    with pytest.raises(OwnershipError, match="already exists in pool"):
        provision(system_conn, plan, Shape.FINAL)


def test_foreign_same_named_domain_is_left_untouched(system_conn: Any, pool_dir: Path) -> None:
    xml = (
        f"<domain type='qemu'><name>{NAME}</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
    system_conn.defineXML(xml)
    with pytest.raises(OwnershipError, match="vmforge did not create it"):
        destroy_vm(system_conn, NAME, VmDir(NAME))
    with pytest.raises(OwnershipError):
        provision(system_conn, probe_plan(system_conn, pool_dir), Shape.INSTALL)
    assert system_conn.lookupByName(NAME).name() == NAME  # still there


def make_iso(path: Path, fill: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * 2048 * 16)
    return path


def windows_plan(conn: Any, pool_dir: Path, tmp_path: Path, name: str, family: str = "7", **vm: Any) -> Plan:
    spec = parse_spec(
        {
            "vm": {"name": name, "virt_type": "qemu", "memory": "512MiB", "vcpus": 1, **vm},
            "windows": {"family": family, "iso": str(make_iso(tmp_path / "installer.iso", b"I"))},
            "virtio_win": {"iso": str(make_iso(tmp_path / "virtio-win.iso", b"V"))},
            "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir)},
            "network": {"type": "none"},
        },
        label="t",
    )
    plan = resolve_plan(spec, host=read_host_facts(conn, SYSTEM_URI, "qemu"))
    make_iso(plan.media.answer_iso, b"A")  # type: ignore[union-attr] # the media step's output
    return plan


def test_media_are_uploaded_once_and_redone_when_changed(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    name = PREFIX + "media"
    plan = windows_plan(system_conn, pool_dir, tmp_path, name, firmware="bios", tpm="off")
    with pytest.raises(VmforgeError, match="answer media has not been built yet"):
        plan.media.answer_iso.unlink()  # type: ignore[union-attr]
        provision(system_conn, plan, Shape.INSTALL)
    assert lookup_pool(system_conn, POOL) is None  # refused before anything was made
    make_iso(plan.media.answer_iso, b"A")  # type: ignore[union-attr]
    dom = provision(system_conn, plan, Shape.INSTALL)
    tag = domain_owner(dom)
    assert tag is not None
    keys = {ref.name: Path(ref.key) for ref in tag.volumes}
    sources = media_sources(plan, Shape.INSTALL)
    installer, virtio = (shared_volume_name(sha256_file(sources[role])) for role in ("installer", "virtio-win"))
    # The installer and virtio-win ISOs are shared content-addressed volumes; the upload parts are gone.
    assert sorted(keys) == sorted(
        [
            f"{name}.qcow2",
            installer,
            f"{name}-answer.iso",
            virtio,
            f"{name}-installer.iso.part",
            f"{name}-virtio-win.iso.part",
        ]
    )
    assert keys[f"{name}-answer.iso"].read_bytes() == plan.media.answer_iso.read_bytes()  # type: ignore[union-attr]
    assert keys[installer].read_bytes() == sources["installer"].read_bytes()
    assert not keys[f"{name}-installer.iso.part"].exists()

    pool = lookup_pool(system_conn, POOL)
    refs = media_refs(plan, Shape.INSTALL, pool_dir, media_digests(sources))
    assert upload_media(system_conn, pool, refs, sources, VmDir(name)) == []  # complete: nothing to redo
    make_iso(plan.media.answer_iso, b"B")  # type: ignore[union-attr] # rebuilt answer media
    assert upload_media(system_conn, pool, refs, sources, VmDir(name)) == ["answer"]
    assert keys[f"{name}-answer.iso"].read_bytes() == b"B" * 2048 * 16

    report = destroy_vm(system_conn, name, VmDir(name), keep_disk=True)
    assert report.kept == [f"volume {POOL}/{name}.qcow2"]  # --keep-disk keeps the disk, not the media
    assert [path.exists() for path in keys.values()] == [path.suffix == ".qcow2" for path in keys.values()]


def test_final_shape_removes_media_live_and_persistently(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    """A BIOS Windows-shaped domain with real (tiny) ISO volumes: media removed while it runs."""
    name = PREFIX + "media"
    plan = windows_plan(system_conn, pool_dir, tmp_path, name, firmware="bios", tpm="off")
    dom = provision(system_conn, plan, Shape.POST_INSTALL)
    start(dom)
    assert sorted(remove_media(dom)) == ["answer", "virtio-win"]
    config = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    live = etree.fromstring(dom.XMLDesc(0).encode())
    assert config.findall("devices/disk[@device='cdrom']") == []
    live_cds = live.findall("devices/disk[@device='cdrom']")
    assert len(live_cds) == 2  # still plugged until the next boot ...
    for cd in live_cds:  # ... but empty
        source = cd.find("source")
        assert source is None or (source.get("file") is None and source.get("volume") is None)
    assert remove_media(dom) == []  # converged
    destroy_vm(system_conn, name, VmDir(name))


def test_windows11_install_shape_starts_under_tcg(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    """Secure-boot OVMF with SMM, swtpm TPM 2.0, SATA CD volumes, virtio disk and video: QEMU takes it all."""
    name = PREFIX + "w11"
    plan = windows_plan(system_conn, pool_dir, tmp_path, name, family="11")
    assert (plan.firmware, plan.tpm) == (Firmware.UEFI_SECURE, True)
    try:
        dom = provision(system_conn, plan, Shape.INSTALL)
        start(dom)
        live = etree.fromstring(dom.XMLDesc(0).encode())
        assert dom.isActive()
        assert live.find("os/loader").get("secure") == "yes"  # type: ignore[union-attr]
        assert live.find("os/nvram").get("template").endswith("OVMF_VARS_4M.ms.fd")  # type: ignore[union-attr]
        assert live.find("devices/tpm/backend").get("version") == "2.0"  # type: ignore[union-attr]
        destroy_vm(system_conn, name, VmDir(name))
    finally:
        undefine_if_present(system_conn, name)


def test_bad_input_is_refused_before_anything_is_defined(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    hidden = probe_plan(system_conn, private / "pool", disk={"pool": PREFIX + "hidden"})
    with pytest.raises(LibvirtError, match="QEMU cannot reach it"):
        provision(system_conn, hidden, Shape.INSTALL)
    for name in (NAME,):
        with pytest.raises(libvirt.libvirtError):
            system_conn.lookupByName(name)
    assert lookup_pool(system_conn, PREFIX + "hidden") is None
    assert not (private / "pool").exists()


def test_install_shape_turns_a_guest_reset_into_a_stop(system_conn: Any, pool_dir: Path) -> None:
    """on_reboot=destroy: the host sees Setup's first reboot as the domain stopping."""
    plan = probe_plan(system_conn, pool_dir, vm={"firmware": "bios", "tpm": "off"}, ivshmem={"enabled": False})
    dom = provision(system_conn, plan, Shape.INSTALL)
    start(dom)
    send_keys(dom, "enter", "space")
    with pytest.raises(VmforgeError, match="still runs after 0s"):
        wait_for_stop(dom, 0)
    dom.reset()  # what a guest reboot looks like to QEMU
    assert wait_for_stop(dom, 30, poll=0.1) in ("shutdown", "destroyed")
    assert not dom.isActive() and dom.isPersistent()
    with pytest.raises(VmforgeError, match="unknown key"):
        send_keys(dom, "anykey")
    destroy_vm(system_conn, NAME, VmDir(NAME))
