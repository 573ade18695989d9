"""The ivshmem server against our own protocol client (QEMU itself: tests/integration)."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ivshmem_support import MiB
from vmforge.ivshmem.doorbell import IvshmemClient, PeerEvent, eventfd_pending
from vmforge.ivshmem.errors import ChannelError
from vmforge.ivshmem.server import IvshmemServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IvshmemServer]:
    srv = IvshmemServer(tmp_path / "ivs.sock", tmp_path / "shm", 4 * MiB, vectors=2)
    with srv:
        yield srv


def test_raw_message_order_matches_the_qemu_spec(server: IvshmemServer) -> None:
    """Read the wire directly: version 0, id, -1 + shm fd, then own id per vector + eventfd."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(server.socket_path))
    got = []
    for _ in range(5):
        data, fds, _, _ = socket.recv_fds(sock, 8, 1)
        got.append((struct.unpack("<q", data)[0], len(fds)))
        for fd in fds:
            if got[-1][0] == -1:
                assert os.fstat(fd).st_size == 4 * MiB
            os.close(fd)
    sock.close()
    assert got == [(0, 0), (0, 0), (-1, 1), (0, 1), (0, 1)]


def test_second_peer_gets_first_peers_vectors_and_first_sees_the_join(server: IvshmemServer) -> None:
    first = IvshmemClient.connect(server.socket_path, vectors=2)
    second = IvshmemClient.connect(server.socket_path, vectors=2)
    try:
        assert (first.peer_id, second.peer_id) == (0, 1)
        assert len(second.peers[0]) == 2 and len(second.vectors) == 2
        assert first.poll_events(timeout=2) == [PeerEvent(1, joined=True)]
        assert len(first.peers[1]) == 2
        assert server.peer_ids() == [0, 1]
        # both map the same memory
        assert os.fstat(first.shm_fd).st_ino == os.fstat(second.shm_fd).st_ino
        # the doorbell: second rings first on vector 1, first wakes
        bell_to_first = second.doorbell(0, vector=1)
        bell_to_first.ring()
        assert eventfd_pending(first.vectors[1]) and not eventfd_pending(first.vectors[0])
        assert first.doorbell(1, vector=1).wait(1.0)
        assert not first.doorbell(1, vector=1).wait(0.01)
    finally:
        second.close()
    assert first.poll_events(timeout=2) == [PeerEvent(1, joined=False)]
    assert 1 not in first.peers
    first.close()


def test_ids_are_reused_after_a_peer_leaves(server: IvshmemServer) -> None:
    a = IvshmemClient.connect(server.socket_path, vectors=2)
    b = IvshmemClient.connect(server.socket_path, vectors=2)
    a.close()
    server_ids = []
    for _ in range(100):
        server_ids = server.peer_ids()
        if server_ids == [1]:
            break
        b.poll_events(timeout=0.05)
    assert server_ids == [1]
    c = IvshmemClient.connect(server.socket_path, vectors=2)
    assert c.peer_id == 0
    b.close()
    c.close()


def test_a_second_server_on_the_same_socket_is_refused(server: IvshmemServer, tmp_path: Path) -> None:
    other = IvshmemServer(server.socket_path, tmp_path / "shm2", MiB)
    with pytest.raises(ChannelError, match="already listening"):
        other.open()


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    with IvshmemServer(path, tmp_path / "shm", MiB):
        client = IvshmemClient.connect(path)
        assert client.peer_id == 0
        client.close()


def test_connect_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="cannot connect") as info:
        IvshmemClient.connect(tmp_path / "none.sock")
    assert info.value.hint is not None and "vmforge channel server" in info.value.hint


def test_sessions_wake_each_other_through_the_doorbell(tmp_path: Path) -> None:
    import mmap
    import threading

    from vmforge.ivshmem.backing import SharedMemory
    from vmforge.ivshmem.layout import OFF_HOST_DOORBELL_ID, OFF_HOST_FEATURES, Feature
    from vmforge.ivshmem.session import Session

    server = IvshmemServer(tmp_path / "ivs.sock", tmp_path / "shm", 8 * MiB, vectors=1).start()
    a = IvshmemClient.connect(server.socket_path)
    b = IvshmemClient.connect(server.socket_path)
    a.poll_events(timeout=2)
    # each side maps the fd the server handed it, as QEMU does
    maps = [mmap.mmap(c.shm_fd, 8 * MiB, mmap.MAP_SHARED) for c in (a, b)]
    shm_a = SharedMemory(server.shm_path, 8 * MiB, maps[0])
    shm_b = SharedMemory(server.shm_path, 8 * MiB, maps[1])
    host = Session.create(shm_a, 16, 16, doorbell=a.doorbell(b.peer_id))
    assert struct.unpack_from("<Q", shm_b.buf, OFF_HOST_FEATURES)[0] & Feature.DOORBELL
    # layout 1.1: the host's ivshmem peer id + 1, the target of a guest's Doorbell register write
    assert struct.unpack_from("<I", shm_b.buf, OFF_HOST_DOORBELL_ID)[0] == a.peer_id + 1
    guest = Session.attach(shm_b, timeout=2, doorbell=b.doorbell(a.peer_id))
    got: list[bytes] = []

    def guest_side() -> None:
        msg = guest.recv(5)  # blocks in select() on its eventfd, no spinning
        got.append(msg.payload)
        guest.send(2, b"pong")

    thread = threading.Thread(target=guest_side)
    thread.start()
    host.send(1, b"ping")
    assert host.recv(5).payload == b"pong"
    thread.join(5)
    assert got == [b"ping"]
    # the guest's one ring: counted by wait(), or still pending if the reply was there first
    assert host.doorbell is not None
    assert host.doorbell.received == 1 or eventfd_pending(host.doorbell.own_fd)
    plain = Session.create(shm_a, 16, 16)
    assert plain.doorbell is None and struct.unpack_from("<I", shm_b.buf, OFF_HOST_DOORBELL_ID)[0] == 0
    a.close()
    b.close()
    server.stop()


def test_the_server_command_serves_until_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    sock = tmp_path / "cli.sock"
    shm = tmp_path / "cli-shm"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "vmforge", "channel", "server", "--socket", str(sock), "--shm", str(shm)]
    proc = subprocess.Popen([*cmd, "--size", "4MiB", "--vectors", "2"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = IvshmemClient.connect(sock, vectors=2)
        assert client.peer_id == 0 and len(client.vectors) == 2
        assert os.fstat(client.shm_fd).st_size == 4 * MiB
        client.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert f"ivshmem server on {sock}" in out
    assert not sock.exists()
