"""Fixtures for tests against the real libvirt daemon (qemu:///system)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

PREFIX = "vmft-dom-"
SYSTEM_URI = "qemu:///system"


@pytest.fixture
def system_conn() -> Iterator[Any]:
    """The real daemon; a test fails (never skips) when it is not running."""
    conn = libvirt.open(SYSTEM_URI)
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
