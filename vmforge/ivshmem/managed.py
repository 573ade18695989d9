"""The ivshmem server of a VM with an ivshmem-doorbell device, run by vmforge beside the domain.

The domain's own XML says what to serve (``<shmem name=NAME>`` with ``ivshmem-doorbell``, the
server's ``<server path=SOCKET>`` and ``<msi vectors=N>``); the size of the memory (which the
server creates, since libvirt takes no ``<size>`` for a doorbell device) comes from the plan, or
from what the VM's state recorded when the server was first started.  ``serve_domain`` runs
before the domain starts (a running server for the same socket is reused, a stale socket file
replaced); ``release_server`` after it stopped.  The server's pid, socket, memory, size and
vectors are recorded in state.json under ``ivshmem_server``.

Under qemu:///system QEMU runs as another user (Debian: libvirt-qemu, as configured by
/etc/libvirt/qemu.conf's ``user``/``group``).  The daemon reports the user and group it resolved
from that file as the DAC security model's base label in its capabilities
(``<baselabel>+UID:+GID</baselabel>``); the socket gets that group with mode 0660 and its folder
stays 0755, so that QEMU, and only root and that group, can connect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge.errors import VmforgeError
from vmforge.ivshmem.server_daemon import ServerHandle, start_server, stop_server
from vmforge.libvirt_conn import libvirt_errors
from vmforge.plan import SHM_DIR, IvshmemPlan, is_local_uri
from vmforge.state import VmDir, VmState

STATE_KEY = "ivshmem_server"
_BASELABEL = re.compile(r"^\+?(\d+):\+?(\d+)$")


@dataclass(frozen=True)
class DoorbellDevice:
    name: str  # the shared memory's name (/dev/shm/NAME)
    socket: Path
    vectors: int


def doorbell_device(domain_xml: str) -> DoorbellDevice | None:
    """The domain's ivshmem-doorbell device (None when it has none)."""
    root = etree.fromstring(domain_xml.encode())
    for shmem in root.findall("devices/shmem"):
        server = shmem.find("server")
        if shmem.find("model[@type='ivshmem-doorbell']") is None or server is None or not server.get("path"):
            continue
        msi = shmem.find("msi")
        vectors = int(msi.get("vectors", "1")) if msi is not None else 1
        return DoorbellDevice(str(shmem.get("name")), Path(str(server.get("path"))), vectors)
    return None


def qemu_group(capabilities_xml: str) -> int | None:
    """The group QEMU's processes run as (the DAC base label's gid); None without DAC labels
    (qemu:///session: QEMU runs as the caller)."""
    root = etree.fromstring(capabilities_xml.encode())
    for label in root.findall("host/secmodel[model='dac']/baselabel"):
        match = _BASELABEL.match((label.text or "").strip())
        if match:
            return int(match.group(2))
    return None


def serve_domain(
    dom: Any, vm_dir: VmDir, ivshmem: IvshmemPlan | None = None, *, shm_dir: Path = SHM_DIR
) -> ServerHandle | None:
    """Run (or reuse) the ivshmem server ``dom``'s doorbell device connects to; None without one."""
    with libvirt_errors(f"reading domain {dom.name()}"):
        device = doorbell_device(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if device is None:
            return None
        conn = dom.connect()
        uri = str(conn.getURI())
        group = qemu_group(conn.getCapabilities())
    if not is_local_uri(uri):
        raise VmforgeError(
            f"ivshmem.model = 'doorbell' on {uri}: vmforge runs the ivshmem server on this machine, not there",
            hint="use ivshmem.model = 'plain' for a remote host",
        )
    state = vm_dir.load() or VmState(name=vm_dir.name)
    size = _size(state, device, ivshmem)
    handle = start_server(vm_dir, device.socket, shm_dir / device.name, size, device.vectors, group=group)
    state = vm_dir.load() or state  # a hook may have written meanwhile
    state.extra[STATE_KEY] = {
        "pid": handle.pid,
        "socket": str(handle.socket_path),
        "shm": str(shm_dir / device.name),
        "size": size,
        "vectors": device.vectors,
        "group": group,
    }
    vm_dir.save(state)
    return handle


def release_server(vm_dir: VmDir) -> bool:
    """Stop the VM's server and remove its socket (its memory stays until ``destroy``); False
    if none ran."""
    if not vm_dir.root.exists():
        return False
    stopped = stop_server(vm_dir)
    state = vm_dir.load()
    if state is not None and state.extra.pop(STATE_KEY, None) is not None:
        vm_dir.save(state)
    return stopped


def _size(state: VmState, device: DoorbellDevice, ivshmem: IvshmemPlan | None) -> int:
    if ivshmem is not None and ivshmem.name == device.name:
        return ivshmem.size
    recorded = state.extra.get(STATE_KEY) or {}
    if recorded.get("shm", "").endswith(f"/{device.name}") and recorded.get("size"):
        return int(recorded["size"])
    planned = (state.extra.get("plan") or {}).get("ivshmem") or {}
    if planned.get("name") == device.name and planned.get("size"):
        return int(planned["size"])
    raise VmforgeError(
        f"the size of ivshmem memory {device.name!r} is not recorded in the state of VM {state.name!r}",
        hint="re-create the VM with 'vmforge create' (it records the size)",
    )
