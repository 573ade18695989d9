"""The probe image builder: what goes in, the cache key, and the cache's integrity.

Uses the real apt-get/dpkg-deb/busybox/ldd on this host and Debian's mirror (CI has it).
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
from pathlib import Path

import pytest
from probe_vm import probe_image  # noqa: F401 - fixture

from vmforge.ivshmem.guest_peer import build_guest_peer
from vmforge.probe.image import ProbeImage, cache_key, ensure_probe_image, resolve_inputs
from vmforge.resources import DataFolder, data_dir

pytestmark = pytest.mark.integration


def initramfs_listing(image: ProbeImage) -> list[str]:
    raw = image.initrd.read_bytes()
    return (
        subprocess.run(["cpio", "-it", "--quiet"], input=raw, capture_output=True, check=True).stdout.decode().split()
    )


def extract(image: ProbeImage, member: str, dest: Path) -> bytes:
    raw = image.initrd.read_bytes()
    subprocess.run(["cpio", "-id", "--quiet", member], input=raw, cwd=dest, check=True)
    return (dest / member).read_bytes()


def test_inputs_name_the_generic_kernel_and_the_key_follows_them() -> None:
    inputs = resolve_inputs()
    kernel = inputs["kernel_package"]
    assert kernel.startswith("linux-image-") and kernel.endswith("-amd64") and "cloud" not in kernel
    assert set(inputs["packages"]) == {kernel, "busybox-static", "qemu-guest-agent"}
    assert "libglib2.0-0" in inputs["host_libraries"]
    key = cache_key(inputs)
    assert cache_key(resolve_inputs()) == key  # stable
    bumped = {**inputs, "packages": {**inputs["packages"], "busybox-static": "9:9.9"}}
    assert cache_key(bumped) != key


def test_editing_an_init_script_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_key(resolve_inputs())
    copy = tmp_path / "data"
    shutil.copytree(data_dir(DataFolder.TEMPLATES), copy / "templates")
    with (copy / "templates" / "probe" / "probe-init").open("a") as handle:
        handle.write("# a local change\n")
    monkeypatch.setenv("VMFORGE_DATA_DIR", str(copy))
    assert cache_key(resolve_inputs()) != before


def test_image_holds_init_agent_libraries_and_modules_in_order(probe_image: ProbeImage, tmp_path: Path) -> None:  # noqa: F811
    names = set(initramfs_listing(probe_image))
    for needed in ("init", "bin/busybox", "bin/sh", "sbin/mke2fs", "usr/sbin/qemu-ga", "etc/inittab",
                   "etc/vmforge/probe-init", "usr/bin/vmforge-phase", "dev/console", "etc/os-release",
                   "usr/bin/vmforge-probe-report", "usr/bin/vmforge-ivshmem-peer"):  # fmt: skip
        assert needed in names, needed
    for library in probe_image.manifest["libraries"]:
        assert library.lstrip("/") in names
    assert any(n.endswith("libglib-2.0.so.0") for n in names)
    order = probe_image.manifest["modules"]
    table = [line.split() for line in extract(probe_image, "etc/vmforge/modules", tmp_path).decode().splitlines()]
    by_trigger: dict[str, list[str]] = {}
    for trigger, _name, path in table:
        by_trigger.setdefault(trigger, []).append(Path(path).name.removesuffix(".ko"))
        assert path in order
    assert {p for _t, _n, p in table} == set(order)
    pairs = [
        ("always", "virtio_ring", "virtio"), ("always", "virtio", "virtio_pci"), ("always", "virtio", "virtio_console"),
        ("pci-class=0106", "libata", "ahci"), ("scsi=5", "cdrom", "sr_mod"), ("scsi=5", "crc-itu-t", "udf"),
        ("arg=vmforge.disk", "jbd2", "ext4"), ("pci=1af4:1110", "vfio", "vfio-pci"),
    ]  # fmt: skip
    for trigger, before, after in pairs:
        short = by_trigger[trigger]
        assert short.index(before) < short.index(after), (trigger, before, after)
    release = probe_image.manifest["kernel_release"]
    for module in order:
        assert f"lib/modules/{release}/{module}" in names
    assert extract(probe_image, "usr/bin/vmforge-ivshmem-peer", tmp_path) == build_guest_peer().read_bytes()
    template = (data_dir(DataFolder.TEMPLATES) / "probe" / "probe-init").read_bytes()
    assert extract(probe_image, "etc/vmforge/probe-init", tmp_path) == template


def _build_into(cache: str) -> str:
    return ensure_probe_image(Path(cache)).key


def test_damaged_cache_is_rebuilt_once_by_concurrent_callers(probe_image: ProbeImage, tmp_path: Path) -> None:  # noqa: F811
    # A cache entry whose initramfs was damaged (disk error, an interrupted copy by hand).
    cache = tmp_path / "cache"
    damaged = cache / "probe" / probe_image.key
    shutil.copytree(probe_image.kernel.parent, damaged)
    (damaged / "initrd.img").write_bytes(b"not an initramfs")
    # Two processes ask at once: the manifest hash catches the damage, one rebuilds under the
    # lock, the other waits and takes the rebuilt entry.
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        keys = pool.map(_build_into, [str(cache), str(cache)])
    assert keys == [probe_image.key, probe_image.key]
    probe_dir = cache / "probe"
    assert sorted(p.name for p in probe_dir.iterdir() if not p.name.startswith(".")) == [probe_image.key]
    assert not [p for p in probe_dir.iterdir() if p.name.startswith(".build-")]  # no half-built leftovers
    rebuilt = ensure_probe_image(cache)
    assert rebuilt.initrd.read_bytes()[:6] == b"070701"
    # The same inputs give the same bytes: the rebuild equals the machine cache's image.
    assert rebuilt.initrd.read_bytes() == probe_image.initrd.read_bytes()
