"""An ivshmem server for ivshmem-doorbell devices (Debian 12 ships none).

Speaks QEMU's ivshmem client/server protocol (docs/specs/ivshmem-spec in QEMU): the server owns a
unix socket; every connecting client (a QEMU with ``-device ivshmem-doorbell,chardev=...`` or a
host program using ``vmforge.ivshmem.doorbell.IvshmemClient``) receives, as 8-byte little-endian
signed numbers, some with one fd attached via SCM_RIGHTS:

1. the protocol version 0;
2. its peer id (0..65535);
3. -1 with the shared-memory fd;
4. for each existing peer, its id once per vector, each with that peer's eventfd for the vector;
5. its own id once per vector, each with its own eventfd.

Existing peers then get the new peer's id once per vector with its eventfds (a join), and a
peer's id without an fd when it disconnects (a leave).  Clients never send anything; end of file
on a client socket means it left.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vmforge.ivshmem.backing import create_shm_file
from vmforge.ivshmem.doorbell import MSG, PROTOCOL_VERSION, SHM_FD_ID
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout
from vmforge.logs import get_logger

log = get_logger("ivshmem.server")
MAX_PEER_ID = 65535
MAX_VECTORS = 64


@dataclass
class _Peer:
    peer_id: int
    sock: socket.socket
    eventfds: list[int] = field(default_factory=list)


class IvshmemServer:
    def __init__(
        self, socket_path: Path, shm_path: Path, shm_size: int, vectors: int = 1, *, group: int | None = None
    ) -> None:
        """``group``: the socket's group (mode 0660), e.g. the group QEMU runs as under qemu:///system."""
        if not 1 <= vectors <= MAX_VECTORS:
            raise ChannelError(f"vectors must be 1..{MAX_VECTORS}, got {vectors}")
        self.socket_path = socket_path
        self.shm_path = shm_path
        self.shm_size = shm_size
        self.vectors = vectors
        self.group = group
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._shm_fd = -1
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()

    # --- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the shared memory and the listening socket (raises if either is impossible)."""
        create_shm_file(self.shm_path, self.shm_size)
        self._shm_fd = os.open(self.shm_path, os.O_RDWR)
        _remove_stale_socket(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not self.socket_path.parent.is_dir():
                self.socket_path.parent.mkdir(mode=0o755, parents=True)  # QEMU's user must reach the socket
            listener.bind(str(self.socket_path))
            os.chmod(self.socket_path, 0o660)
            if self.group is not None:
                os.chown(self.socket_path, -1, self.group)
            listener.listen(16)
        except OSError as exc:
            listener.close()
            raise ChannelError(f"cannot listen on {self.socket_path}: {exc.strerror}") from None
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        log.info("ivshmem server listening on %s (%s, %d vectors)", self.socket_path, self.shm_path, self.vectors)

    def start(self) -> IvshmemServer:
        """open() and serve in a background thread."""
        self.open()
        self._thread = threading.Thread(target=self.serve, name="ivshmem-server", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve until stop() (call open() first)."""
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.data == "wake":
                    os.read(self._wake_r, 64)
                elif key.data is None:
                    self._accept()
                else:
                    self._check_peer(key.data)

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for peer in list(self._peers.values()):
                self._drop(peer, notify=False)
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        for fd in (self._shm_fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._selector.close()

    def __enter__(self) -> IvshmemServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- observation (tests, status) ---------------------------------------------------------

    def peer_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._peers)

    def wait_for_peers(self, count: int, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            ids = self.peer_ids()
            if len(ids) >= count:
                return ids
            if time.monotonic() >= deadline:
                raise ChannelTimeout(f"{len(ids)} of {count} ivshmem peers connected within {timeout:g}s")
            time.sleep(0.02)

    # --- protocol ---------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            peer_id = next((i for i in range(MAX_PEER_ID + 1) if i not in self._peers), None)
            if peer_id is None:
                log.warning("ivshmem server full, refusing a client")
                sock.close()
                return
            peer = _Peer(peer_id, sock, [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(self.vectors)])
            sock.settimeout(5.0)
            try:
                _send(sock, PROTOCOL_VERSION)
                _send(sock, peer_id)
                _send(sock, SHM_FD_ID, self._shm_fd)
                for other in self._peers.values():
                    for fd in other.eventfds:
                        _send(sock, other.peer_id, fd)
                for fd in peer.eventfds:
                    _send(sock, peer_id, fd)
            except OSError as exc:
                log.warning("ivshmem client %d failed during setup: %s", peer_id, exc)
                self._drop(peer, notify=False)
                return
            for other in list(self._peers.values()):
                try:
                    for fd in peer.eventfds:
                        _send(other.sock, peer_id, fd)
                except OSError:
                    self._drop(other, notify=True)
            self._peers[peer_id] = peer
            self._selector.register(sock, selectors.EVENT_READ, peer)
        log.info("ivshmem peer %d joined", peer_id)

    def _check_peer(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(64, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            return  # clients are not supposed to talk; ignore
        with self._lock:
            self._drop(peer, notify=True)
        log.info("ivshmem peer %d left", peer.peer_id)

    def _drop(self, peer: _Peer, *, notify: bool) -> None:
        """Forget a peer (caller holds the lock) and tell the others it left."""
        if self._peers.get(peer.peer_id) is peer:
            del self._peers[peer.peer_id]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.sock)
        peer.sock.close()
        for fd in peer.eventfds:
            with contextlib.suppress(OSError):
                os.close(fd)
        peer.eventfds.clear()
        if notify:
            for other in list(self._peers.values()):
                try:
                    _send(other.sock, peer.peer_id)
                except OSError:
                    self._drop(other, notify=True)


def _send(sock: socket.socket, value: int, fd: int | None = None) -> None:
    data = MSG.pack(value)
    if fd is None:
        sock.sendall(data)
    else:
        socket.send_fds(sock, [data], [fd])


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead server; refuse if a server still answers there."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ChannelError(f"{path} exists and is not a socket", hint="choose another socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ChannelError(f"an ivshmem server is already listening on {path}", hint="stop it first")
