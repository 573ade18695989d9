"""Integration tests need a real libvirtd; CI starts it through scripts/setup-host.

They fail (never skip) when the daemon is missing: a skipped integration suite would hide a
broken host setup.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

SYSTEM_URI = "qemu:///system"


@pytest.fixture(scope="session")
def libvirt_conn() -> Iterator[Any]:
    try:
        conn = libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not reachable at {SYSTEM_URI} ({exc}); run scripts/setup-host")
    yield conn
    conn.close()


@pytest.fixture
def unique_name() -> str:
    return f"vmft-{uuid.uuid4().hex[:10]}"
