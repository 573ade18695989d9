"""vmforge's ivshmem server against QEMU itself (an ivshmem-doorbell device, no guest OS needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmforge.ivshmem.doorbell import IvshmemClient, PeerEvent, eventfd_pending, write_eventfd
from vmforge.ivshmem.server import IvshmemServer

pytestmark = pytest.mark.integration
MiB = 1024**2
QEMU = "qemu-system-x86_64"


def start_qemu(socket_path: Path, vectors: int) -> subprocess.Popen[str]:
    assert shutil.which(QEMU), f"{QEMU} is required (scripts/setup-host installs qemu-system-x86)"
    return subprocess.Popen(
        [
            QEMU,
            "-accel", "tcg", "-M", "q35", "-nographic", "-nodefaults", "-S",
            "-monitor", "none", "-serial", "none",
            "-chardev", f"socket,path={socket_path},id=ivs",
            "-device", f"ivshmem-doorbell,chardev=ivs,vectors={vectors}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IvshmemServer]:
    shm = Path(f"/dev/shm/vmft-shm-qemu-{os.getpid()}")
    srv = IvshmemServer(tmp_path / "ivshmem.sock", shm, 4 * MiB, vectors=2)
    try:
        with srv:
            yield srv
    finally:
        shm.unlink(missing_ok=True)


def test_qemu_connects_gets_its_fds_and_takes_doorbells(server: IvshmemServer) -> None:
    qemu = start_qemu(server.socket_path, vectors=2)
    client = None
    try:
        assert server.wait_for_peers(1, timeout=30) == [0]
        # our own client joins as the second peer and gets QEMU's two eventfds
        client = IvshmemClient.connect(server.socket_path, vectors=2)
        assert client.peer_id == 1
        assert sorted(client.peers) == [0] and len(client.peers[0]) == 2
        time.sleep(0.5)
        assert qemu.poll() is None, f"QEMU exited: {qemu.communicate(timeout=5)[1]}"
        # QEMU listens on its eventfds: ringing vector 1 is consumed by QEMU's ivshmem device
        for vector in (0, 1):
            fd = client.peers[0][vector]
            write_eventfd(fd)
            deadline = time.monotonic() + 10
            while eventfd_pending(fd) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not eventfd_pending(fd), f"QEMU did not consume the doorbell on vector {vector}"
        # QEMU goes away: our client is told peer 0 left
        qemu.terminate()
        _, err = qemu.communicate(timeout=10)
        assert "ivshmem" not in err.lower(), err
        assert client.poll_events(timeout=5) == [PeerEvent(0, joined=False)]
        assert server.peer_ids() == [1]
    finally:
        if client is not None:
            client.close()
        if qemu.poll() is None:
            qemu.kill()
            qemu.communicate(timeout=10)


def test_qemu_joining_later_is_announced_to_existing_peers(server: IvshmemServer) -> None:
    client = IvshmemClient.connect(server.socket_path, vectors=2)
    qemu = start_qemu(server.socket_path, vectors=2)
    try:
        events = client.poll_events(timeout=30)
        assert events == [PeerEvent(1, joined=True)] and len(client.peers[1]) == 2
        time.sleep(0.5)
        assert qemu.poll() is None, f"QEMU exited: {qemu.communicate(timeout=5)[1]}"
    finally:
        client.close()
        qemu.kill()
        qemu.communicate(timeout=10)
