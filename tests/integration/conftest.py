"""Integration tests need a real libvirtd; CI starts it through scripts/setup-host.

They fail (never skip) when the daemon is missing: a skipped integration suite would hide a
broken host setup.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from pools import remove_pool

from vmforge.host.facts import read_host_facts
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import parse_spec

PREFIX = "vmft-dom-"
SYSTEM_URI = "qemu:///system"


def _open_system() -> Any:
    try:
        return libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not reachable at {SYSTEM_URI} ({exc}); run scripts/setup-host")


@pytest.fixture(scope="session")
def libvirt_conn() -> Iterator[Any]:
    conn = _open_system()
    yield conn
    conn.close()


@pytest.fixture
def unique_name() -> str:
    return f"vmft-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def system_conn() -> Iterator[Any]:
    """The real daemon; a test fails (never skips) when it is not running."""
    conn = _open_system()
    try:
        yield conn
    finally:
        conn.close()


def undefine_if_present(conn: Any, name: str) -> None:
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)


NAME = PREFIX + "life"
POOL = PREFIX + "pool"
SHM = PREFIX + "life-shm"


@pytest.fixture
def pool_dir() -> Iterator[Path]:
    # QEMU runs as libvirt-qemu: the pool must not sit below pytest's 0700 tmp folders.
    path = Path(f"/var/tmp/{POOL}-{os.getpid()}")
    try:
        yield path
    finally:
        conn = libvirt.open(SYSTEM_URI)
        try:
            for name in (NAME, PREFIX + "media"):
                undefine_if_present(conn, name)
            remove_pool(conn, POOL)
        finally:
            conn.close()
        shutil.rmtree(path, ignore_errors=True)
        Path("/dev/shm", SHM).unlink(missing_ok=True)


def probe_plan(conn: Any, pool_dir: Path, name: str = NAME, **extra: Any) -> Plan:
    data: dict[str, Any] = {
        "os": "probe",
        "vm": {"name": name, "virt_type": "qemu", "memory": "256MiB", "vcpus": 1, "firmware": "uefi", "tpm": "on"},
        "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(pool_dir)},
        "network": {"type": "none"},
        "display": {"vnc": False},
        "ivshmem": {"enabled": True, "name": SHM},
    }
    for section, values in extra.items():
        data.setdefault(section, {}).update(values)
    spec = parse_spec(data, label="test")
    return resolve_plan(spec, host=read_host_facts(conn, SYSTEM_URI, "qemu"))
