"""Channels that carry QEMU guest agent commands: libvirt's qemuAgentCommand, or a unix socket.

A channel sends one command and returns its ``return`` value.  It raises
:class:`GuestCommandError` when the agent answered with an error, :class:`GuestTimeout` when no
answer came in time and :class:`GuestUnreachable` for any other failure of the wire.  After any
wire failure the channel drops its connection; the next command reconnects and resynchronises
first, so a late answer to an abandoned command is never taken for the answer to a new one.

- :class:`LibvirtAgentChannel` is what vmforge uses for real domains (local or remote URIs);
  libvirt does the agent's sync handshake itself before each command.
- :class:`UnixSocketChannel` speaks the agent's wire protocol directly: QEMU's
  ``-chardev socket`` of a guest's agent port, or a ``qemu-ga -m unix-listen`` on the host (the
  fast tests).  It does the ``guest-sync-delimited`` handshake (the client sends 0xFF to reset the
  agent's parser; the agent puts 0xFF before its answer, so anything buffered before it is junk).
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt

from vmforge.errors import VmforgeError
from vmforge.guest.transport import GuestCommandError, GuestTimeout, GuestUnreachable
from vmforge.logs import get_logger

log = get_logger("guest.agent")

SYNC_BYTE = b"\xff"
_RECV = 256 * 1024


class AgentChannel(abc.ABC):
    name: str

    @abc.abstractmethod
    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        """Send one command; its ``return`` value."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget the connection; the next command reconnects (and resyncs)."""

    def close(self) -> None:
        self.reset()


def _request(execute: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    request: dict[str, Any] = {"execute": execute}
    if arguments:
        request["arguments"] = arguments
    return request


def _error_from_reply(channel: str, execute: str, reply: dict[str, Any]) -> GuestCommandError:
    error = reply.get("error") or {}
    desc = str(error.get("desc") or error)
    return GuestCommandError(
        f"guest agent on {channel} refused {execute}: {desc}",
        hint="the agent answered; the operation itself failed in the guest",
    )


class UnixSocketChannel(AgentChannel):
    """The agent's protocol over a unix stream socket (QEMU chardev or host ``qemu-ga``)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sync_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.name = f"unix socket {self.path}"
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - sync ids, not secrets
        self._sync_timeout = sync_timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self.syncs = 0  # how many handshakes this channel did (tests read it)

    # -- connection ---------------------------------------------------------------------------
    def reset(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer.clear()

    def _connect(self, deadline: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.01, deadline - self._clock()))
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise GuestUnreachable(
                f"cannot connect to the guest agent on {self.name}: {exc.strerror or exc}",
                hint="is the VM (or qemu-ga) running with this agent socket?",
            ) from None
        self._sock = sock
        try:
            self._sync(min(deadline, self._clock() + self._sync_timeout))
        except BaseException:
            self.reset()
            raise
        return sock

    def _sync(self, deadline: float) -> None:
        token = self._rng.randrange(1, 2**31)
        request = json.dumps(_request("guest-sync-delimited", {"id": token})).encode()
        self._send(SYNC_BYTE + request + b"\n", "guest-sync-delimited", deadline)
        # Everything before the agent's own 0xFF is stale output of an earlier client or command.
        while True:
            cut = self._buffer.find(SYNC_BYTE)
            if cut >= 0:
                del self._buffer[: cut + 1]
                break
            self._buffer.clear()
            self._recv_more("guest-sync-delimited", deadline)
        while True:
            reply = self._read_reply("guest-sync-delimited", deadline)
            if reply.get("return") == token:
                self.syncs += 1
                return
            log.debug("discarding stale agent output during sync: %.200s", reply)

    # -- wire ---------------------------------------------------------------------------------
    def _send(self, data: bytes, execute: str, deadline: float) -> None:
        assert self._sock is not None
        try:
            self._sock.settimeout(max(0.01, deadline - self._clock()))
            self._sock.sendall(data)
        except TimeoutError:
            self.reset()
            raise GuestTimeout(f"guest agent on {self.name} did not accept {execute} in time") from None
        except OSError as exc:
            self.reset()
            raise GuestUnreachable(
                f"lost the guest agent on {self.name} while sending {execute}: {exc.strerror or exc}"
            ) from None

    def _recv_more(self, execute: str, deadline: float) -> None:
        assert self._sock is not None
        remaining = deadline - self._clock()
        if remaining <= 0:
            self.reset()
            raise GuestTimeout(f"guest agent on {self.name} did not answer {execute} in time")
        try:
            self._sock.settimeout(remaining)
            data = self._sock.recv(_RECV)
        except TimeoutError:
            self.reset()
            raise GuestTimeout(f"guest agent on {self.name} did not answer {execute} in time") from None
        except OSError as exc:
            self.reset()
            raise GuestUnreachable(
                f"lost the guest agent on {self.name} during {execute}: {exc.strerror or exc}"
            ) from None
        if not data:
            self.reset()
            raise GuestUnreachable(f"the guest agent on {self.name} closed the connection during {execute}")
        self._buffer.extend(data)

    def _read_reply(self, execute: str, deadline: float) -> dict[str, Any]:
        """The next JSON object (one per line; stray 0xFF bytes and blank lines skipped)."""
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                self._recv_more(execute, deadline)
                continue
            line = bytes(self._buffer[:cut]).replace(SYNC_BYTE, b"").strip()
            del self._buffer[: cut + 1]
            if not line:
                continue
            try:
                reply = json.loads(line)
            except ValueError:
                self.reset()
                raise GuestUnreachable(
                    f"the guest agent on {self.name} sent something that is not JSON during {execute}: {line[:80]!r}"
                ) from None
            if isinstance(reply, dict):
                return reply

    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        deadline = self._clock() + timeout
        self._connect(deadline)
        self._send(json.dumps(_request(execute, arguments)).encode() + b"\n", execute, deadline)
        reply = self._read_reply(execute, deadline)
        if "error" in reply:
            raise _error_from_reply(self.name, execute, reply)
        if "return" not in reply:
            self.reset()
            raise GuestUnreachable(f"the guest agent on {self.name} answered {execute} without a result")
        return reply["return"]


class LibvirtAgentChannel(AgentChannel):
    """Agent commands through ``libvirt_qemu.qemuAgentCommand`` (works over remote URIs).

    ``connect`` opens a fresh libvirt connection; it is called again after the daemon went away
    (libvirtd restarted), and the domain is looked up anew by name.
    """

    def __init__(self, connect: Callable[[], Any], domain_name: str) -> None:
        self._connect = connect
        self.domain_name = domain_name
        self.name = f"guest agent channel org.qemu.guest_agent.0 of domain {domain_name}"
        self._conn: Any = None
        self._dom: Any = None

    def reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()
        self._conn = None
        self._dom = None

    def _domain(self) -> Any:
        if self._dom is None:
            try:
                self._conn = self._connect()
                self._dom = self._conn.lookupByName(self.domain_name)
            except libvirt.libvirtError as exc:
                self.reset()
                raise GuestUnreachable(
                    f"cannot reach domain {self.domain_name}: {(exc.get_error_message() or str(exc)).strip()}"
                ) from None
            except VmforgeError as exc:  # the daemon is down (restarting): worth retrying
                self.reset()
                raise GuestUnreachable(f"cannot reach domain {self.domain_name}: {exc.message}") from None
        return self._dom

    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        import libvirt_qemu

        dom = self._domain()
        seconds = max(1, math.ceil(timeout))
        try:
            answer = libvirt_qemu.qemuAgentCommand(dom, json.dumps(_request(execute, arguments)), seconds, 0)
        except libvirt.libvirtError as exc:
            raise self._map_error(exc, execute, seconds) from None
        reply = json.loads(answer)
        if "error" in reply:
            raise _error_from_reply(self.name, execute, reply)
        return reply.get("return")

    def _map_error(self, exc: Any, execute: str, seconds: int) -> Exception:
        code = exc.get_error_code()
        text = (exc.get_error_message() or str(exc)).strip()
        if "unable to execute QEMU agent command" in text:
            return GuestCommandError(f"guest agent on {self.name} refused {execute}: {text}")
        if code == libvirt.VIR_ERR_AGENT_UNRESPONSIVE or "timeout" in text.lower():
            return GuestTimeout(
                f"{self.name} did not answer {execute} within {seconds}s ({text})",
                hint="is qemu-ga installed and running in the guest?",
            )
        # The connection or domain may be gone (libvirtd restarted): start afresh next time.
        self.reset()
        return GuestUnreachable(f"{self.name}: {execute} failed: {text}")
