"""The ivshmem server started and stopped beside a VM, with QEMU as its client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ivshmem_qemu import start_qemu
from vmforge.ivshmem.doorbell import IvshmemClient
from vmforge.ivshmem.errors import ChannelError
from vmforge.ivshmem.server_daemon import PIDFILE, running_server, start_server, stop_server
from vmforge.state import VmDir

pytestmark = pytest.mark.integration
MiB = 1024**2


@pytest.fixture
def vm() -> Iterator[VmDir]:
    vm = VmDir(f"vmft-shm-daemon-{os.getpid()}")
    shm = Path(f"/dev/shm/vmft-shm-daemon-{os.getpid()}")
    try:
        yield vm
    finally:
        stop_server(vm)
        shm.unlink(missing_ok=True)


def test_start_serve_qemu_and_stop(vm: VmDir, tmp_path: Path) -> None:
    sock = tmp_path / "vm.sock"
    shm = Path(f"/dev/shm/vmft-shm-daemon-{os.getpid()}")
    handle = start_server(vm, sock, shm, 4 * MiB, vectors=2)
    assert running_server(vm) == handle
    assert start_server(vm, sock, shm, 4 * MiB, vectors=2) == handle  # idempotent
    with pytest.raises(ChannelError, match="already has an ivshmem server"):
        start_server(vm, tmp_path / "other.sock", shm, 4 * MiB, vectors=2)
    qemu = start_qemu(sock, vectors=2)
    try:
        client = IvshmemClient.connect(sock, vectors=2)
        events = client.poll_events(timeout=30) if not client.peers else []
        assert client.peers or events, "QEMU never joined"
        peers = sorted(client.peers)
        assert len(peers) == 1 and len(client.peers[peers[0]]) == 2
        client.close()
        assert qemu.poll() is None
    finally:
        qemu.kill()
        qemu.communicate(timeout=10)
    assert stop_server(vm) is True
    assert running_server(vm) is None and not (vm.root / PIDFILE).exists()
    assert not sock.exists()
    assert not os.path.exists(f"/proc/{handle.pid}") or "Z" in Path(f"/proc/{handle.pid}/stat").read_text()
    assert stop_server(vm) is False


def test_a_stale_pidfile_is_ignored(vm: VmDir, tmp_path: Path) -> None:
    vm.ensure()
    (vm.root / PIDFILE).write_text(f"{os.getpid()} {tmp_path / 'x.sock'}\n")  # a live pid, but not a server
    assert running_server(vm) is None
    assert not (vm.root / PIDFILE).exists()


def test_a_server_that_cannot_start_points_at_its_log(vm: VmDir, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-socket"
    blocker.write_text("x")
    with pytest.raises(ChannelError, match="exited") as info:
        start_server(vm, blocker, tmp_path / "shm", 4 * MiB, vectors=1)
    assert info.value.hint is not None and "ivshmem-server.log" in info.value.hint
    assert "is not a socket" in (vm.logs / "ivshmem-server.log").read_text()
