"""Shared pieces of the image/snapshot/clone integration tests (libvirt prefix ``vmft-s2i-``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vmforge.host.facts import read_host_facts
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import parse_spec
from vmforge.storage import lookup_pool

PREFIX = "vmft-s2i-"
POOL = PREFIX + "pool"
SYSTEM_URI = "qemu:///system"


def probe_vm_spec(name: str, pool: str, pool_dir: Path, ready_s: float) -> str:
    """The spec (TOML) of the small probe VM that golden images are made of: BIOS, TPM on (its
    state is part of an image), a 64 MiB disk in ``pool``, no network, display or ivshmem, with
    ``ready_s`` for boot and agent (TCG on a busy host).  The golden-image test and
    bench/images_bench.py both build it."""
    return f"""os = "probe"
[vm]
name = "{name}"
virt_type = "qemu"
memory = "256MiB"
vcpus = 1
firmware = "bios"
tpm = "on"
[disk]
size = "64MiB"
pool = "{pool}"
pool_dir = "{pool_dir}"
[network]
type = "none"
[display]
vnc = false
[ivshmem]
enabled = false
[timeouts]
boot = "{ready_s:.0f}s"
agent = "{ready_s:.0f}s"
"""


def uefi_tpm_plan(conn: Any, pool_dir: Path, name: str, **extra: Any) -> Plan:
    """A UEFI + TPM 2.0 domain through vmforge's own plan and domain builder (no OS to boot)."""
    data: dict[str, Any] = {
        "os": "probe",
        "vm": {"name": name, "virt_type": "qemu", "memory": "128MiB", "vcpus": 1, "firmware": "uefi", "tpm": "on"},
        "disk": {"size": "32MiB", "pool": POOL, "pool_dir": str(pool_dir)},
        "network": {"type": "none"},
        "display": {"vnc": False},
        "ivshmem": {"enabled": False},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    return resolve_plan(parse_spec(data, label="test"), host=read_host_facts(conn, SYSTEM_URI, "qemu"))


def remove_prefixed(conn: Any) -> None:
    """Every vmft-s2i- domain, then the pool and its volumes."""
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
    pool = lookup_pool(conn, POOL)
    if pool is not None:
        if pool.isActive():
            pool.refresh(0)
            for volume in pool.listAllVolumes(0):
                volume.delete(0)
            pool.destroy()
        pool.undefine()


@pytest.fixture
def img_pool_dir() -> Iterator[Path]:
    # QEMU runs as libvirt-qemu: the pool must not sit below pytest's 0700 tmp folders.
    path = Path(f"/var/tmp/{POOL}-{os.getpid()}")
    try:
        yield path
    finally:
        conn = libvirt.open(SYSTEM_URI)
        try:
            remove_prefixed(conn)
        finally:
            conn.close()
        shutil.rmtree(path, ignore_errors=True)


def disk_content_sha(path: Path, scratch: Path) -> str:
    """What the guest would read: the whole backing chain flattened to raw."""
    raw = scratch / "flat.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(path), str(raw)], check=True, timeout=120)
    try:
        return hashlib.sha256(raw.read_bytes()).hexdigest()
    finally:
        raw.unlink()


def qemu_io_write(path: Path, pattern: int, offset: int, length: int) -> None:
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
