"""Doorbell notifications: eventfds handed out by an ivshmem server.

``IvshmemClient`` speaks the client half of QEMU's ivshmem server protocol (the half QEMU itself
speaks): read the protocol version, our peer id, the shared-memory fd, then connect notices
(peer id + one eventfd per vector) and our own per-vector eventfds; later notices announce peers
joining (id with an fd) and leaving (id without an fd).  ``Doorbell`` wraps one vector: ring the
peer's eventfd, wait on ours.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from vmforge.ivshmem.errors import ChannelError, ChannelTimeout

PROTOCOL_VERSION = 0
MSG = struct.Struct("<q")
SHM_FD_ID = -1
VECTOR_GRACE = 1.0  # seconds to wait for the remaining vectors of a join


def write_eventfd(fd: int) -> None:
    os.write(fd, struct.pack("<Q", 1))


def eventfd_pending(fd: int) -> bool:
    """True if the eventfd's counter is non-zero (without consuming it)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Doorbell:
    """One interrupt vector between us and one peer."""

    def __init__(self, own_fd: int, peer_fd: int, own_id: int | None = None) -> None:
        self.own_fd = own_fd
        self.peer_fd = peer_fd
        self.own_id = own_id  # our ivshmem peer id (what a guest writes to its Doorbell register)
        self.received = 0  # rings that woke wait()

    def ring(self) -> None:
        write_eventfd(self.peer_fd)

    def wait(self, timeout: float) -> bool:
        """Block until rung or ``timeout``; True if rung (the counter is cleared)."""
        ready, _, _ = select.select([self.own_fd], [], [], max(timeout, 0.0))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            self.received += struct.unpack("<Q", os.read(self.own_fd, 8))[0]
        return True


@dataclass
class PeerEvent:
    peer_id: int
    joined: bool  # False: the peer left


@dataclass
class IvshmemClient:
    """A connected client of an ivshmem server (ours or any other speaking the protocol)."""

    sock: socket.socket
    peer_id: int
    shm_fd: int
    vectors: list[int] = field(default_factory=list)  # our eventfds, one per vector
    peers: dict[int, list[int]] = field(default_factory=dict)  # other peers' eventfds

    @classmethod
    def connect(cls, path: Path, *, timeout: float = 5.0, vectors: int = 1) -> IvshmemClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            sock.close()
            raise ChannelError(
                f"cannot connect to the ivshmem server at {path}: {exc.strerror}",
                hint="start it with 'vmforge channel server'",
            ) from None
        try:
            return cls._handshake(sock, vectors)
        except BaseException:
            sock.close()
            raise

    @classmethod
    def _handshake(cls, sock: socket.socket, vectors: int) -> IvshmemClient:
        version, _ = _recv(sock)
        if version != PROTOCOL_VERSION:
            raise ChannelError(f"ivshmem server speaks protocol {version}, only {PROTOCOL_VERSION} is known")
        peer_id, _ = _recv(sock)
        marker, shm_fd = _recv(sock)
        if marker != SHM_FD_ID or shm_fd is None:
            raise ChannelError("the ivshmem server did not send the shared-memory fd")
        client = cls(sock, peer_id, shm_fd)
        # Connect notices for existing peers, then our own vectors (peer id == ours).
        while len(client.vectors) < vectors:
            got_id, got_fd = _recv(sock)
            if got_fd is None:
                client._leave(got_id)
            elif got_id == peer_id:
                client.vectors.append(got_fd)
            else:
                client.peers.setdefault(got_id, []).append(got_fd)
        return client

    def poll_events(self, timeout: float = 0.0) -> list[PeerEvent]:
        """Read join/leave notices that arrived (waits up to ``timeout`` for the first one)."""
        events: list[PeerEvent] = []
        wait = timeout
        while True:
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return events
            got_id, got_fd = _recv(self.sock)
            if got_fd is None:
                self._leave(got_id)
                events.append(PeerEvent(got_id, joined=False))
                wait = 0.0
                continue
            fds = self.peers.setdefault(got_id, [])
            fds.append(got_fd)
            if len(fds) == 1:
                events.append(PeerEvent(got_id, joined=True))
            # a join is one message per vector: wait for the rest of them
            wait = VECTOR_GRACE if len(fds) < len(self.vectors) else 0.0

    def _leave(self, peer_id: int) -> None:
        for fd in self.peers.pop(peer_id, []):
            os.close(fd)

    def doorbell(self, peer_id: int, vector: int = 0) -> Doorbell:
        fds = self.peers.get(peer_id)
        if not fds or vector >= len(fds) or vector >= len(self.vectors):
            raise ChannelError(f"ivshmem peer {peer_id} has no vector {vector}")
        return Doorbell(self.vectors[vector], fds[vector], self.peer_id)

    def close(self) -> None:
        self.sock.close()
        for fd in [self.shm_fd, *self.vectors, *(f for fds in self.peers.values() for f in fds)]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.vectors.clear()
        self.peers.clear()


def _recv(sock: socket.socket) -> tuple[int, int | None]:
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, MSG.size, 1)
    except TimeoutError:
        raise ChannelTimeout("the ivshmem server stopped answering") from None
    if len(data) != MSG.size:
        for fd in fds:
            os.close(fd)
        raise ChannelError("the ivshmem server closed the connection")
    (value,) = MSG.unpack(data)
    return value, (fds[0] if fds else None)
