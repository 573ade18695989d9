"""Gather :class:`~vmforge.plan.HostFacts` from a live libvirt connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmforge.host.domcaps import DESCRIPTOR_DIRS, fetch_domcaps
from vmforge.host.pci import PciHost
from vmforge.plan import HostFacts, is_local_uri


def read_host_facts(conn: Any, uri: str, virt_type: str, sys_root: Path = Path("/")) -> HostFacts:
    """Domain capabilities from the daemon; sysfs and firmware descriptors only when local."""
    local = is_local_uri(uri)
    return HostFacts(
        caps=fetch_domcaps(conn, virt_type),
        pci=PciHost(sys_root) if local else None,
        firmware_dirs=DESCRIPTOR_DIRS if local else None,
    )
