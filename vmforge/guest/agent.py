"""The guest transport over the QEMU guest agent (guest-exec, guest-file-*, guest-get-osinfo).

Every agent command has an explicit timeout; waits poll with a bounded, jittered exponential
backoff (clock, sleep and random source injectable); files move in base64 chunks of
:data:`CHUNK_SIZE` bytes, far below the agent's limits (qemu-ga reads at most 48 MiB per
``guest-file-read`` and caps captured output at 16 MiB; libvirt is tighter, see below);
``capture-output`` is sent as the plain boolean every qemu-ga version accepts.

Chunk size, measured here (libvirt 9.0, QEMU 7.2, TCG): through ``qemuAgentCommand`` a
``guest-file-write`` of 128 KiB (175 KB of JSON) works and one of 192 KiB never gets an answer
(libvirt then reports the agent "not available for now"), while QEMU's own socket takes 1 MiB.
64 KiB keeps every request under 90 KB of JSON.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vmforge.guest.agent_channel import AgentChannel
from vmforge.guest.retry import backoff, retry_until
from vmforge.guest.transport import (
    Completed,
    GuestCommandError,
    GuestError,
    GuestTimeout,
    GuestTransport,
    GuestUnreachable,
    OsInfo,
)
from vmforge.logs import get_logger

log = get_logger("guest.agent")

CHUNK_SIZE = 64 * 1024


class AgentTransport(GuestTransport):
    def __init__(
        self,
        channel: AgentChannel,
        *,
        command_timeout: float = 10.0,
        file_timeout: float = 60.0,
        chunk_size: int = CHUNK_SIZE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_poll: float = 1.0,
    ) -> None:
        self.channel = channel
        self.name = f"guest agent on {channel.name}" if channel.name.startswith("unix") else channel.name
        self.command_timeout = command_timeout
        self.file_timeout = file_timeout
        self.chunk_size = chunk_size
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._max_poll = max_poll

    def _cmd(self, execute: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.channel.command(execute, arguments, self.command_timeout if timeout is None else timeout)

    # -- readiness ----------------------------------------------------------------------------
    def wait_ready(self, deadline: float) -> None:
        start = self._clock()

        def ping() -> None:
            try:
                self._cmd("guest-ping", timeout=min(self.command_timeout, max(deadline - self._clock(), 0.05)))
            except GuestUnreachable:
                self.channel.reset()
                raise

        def timed_out(last: GuestError | None) -> GuestTimeout:
            reason = f" (last error: {last.message})" if last else ""
            return GuestTimeout(
                f"the {self.name} did not answer within {self._clock() - start:.0f}s{reason}",
                hint="is the guest running, with qemu-ga started on its org.qemu.guest_agent.0 port?",
            )

        retry_until(
            ping,
            deadline=deadline,
            delays=backoff(self._rng, initial=0.1, maximum=self._max_poll),
            clock=self._clock,
            sleep=self._sleep,
            timed_out=timed_out,
            retry_on=(GuestUnreachable,),
        )

    # -- programs -----------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        if not argv:
            raise GuestError("nothing to run: empty argv")
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode("ascii")
        deadline = self._clock() + timeout
        pid = self._cmd("guest-exec", arguments)["pid"]
        delays = backoff(self._rng, initial=0.02, maximum=self._max_poll)
        lost: GuestError | None = None
        while True:
            try:
                status = self._cmd("guest-exec-status", {"pid": pid})
            except (GuestUnreachable, GuestTimeout) as exc:
                # The wire went away (libvirtd restarted, a socket reset) or one poll was not
                # answered (libvirt reconnecting to the agent) while the program runs on in the
                # guest: reconnect and ask again until the deadline.
                lost = exc
                self.channel.reset()
                status = {}
            except GuestCommandError:
                if lost is not None:  # the agent forgets a pid once it reported its exit
                    raise GuestError(
                        f"{argv[0]} (pid {pid}) ran in the guest, but its exit status was lost while the "
                        f"connection was down ({lost.message})",
                        hint="the command may have finished; check its effect in the guest before re-running it",
                    ) from None
                raise
            if status.get("exited"):
                break
            remaining = deadline - self._clock()
            if remaining <= 0:
                reason = f"; the connection was lost: {lost.message}" if lost is not None else ""
                raise GuestTimeout(
                    f"{argv[0]} did not finish within {timeout:g}s in the guest (pid {pid}, {self.name}){reason}",
                    hint="it may still be running there; raise the timeout if it needs longer",
                )
            self._sleep(min(next(delays), remaining))
        if status.get("out-truncated") or status.get("err-truncated"):
            raise GuestError(
                f"{argv[0]} wrote more output than the guest agent can capture (16 MiB)",
                hint="redirect the output to a file in the guest and copy it with get_file",
            )
        rc = status.get("exitcode")
        if rc is None:
            rc = 128 + int(status.get("signal", 0))
        return Completed(
            int(rc),
            base64.b64decode(status.get("out-data", "")),
            base64.b64decode(status.get("err-data", "")),
        )

    # -- files --------------------------------------------------------------------------------
    def _close_handle(self, handle: int, *, quiet: bool) -> None:
        try:
            self._cmd("guest-file-close", {"handle": handle})
        except GuestError:
            if not quiet:
                raise

    def put_file(self, local: Path, remote: str) -> int:
        try:
            source = local.open("rb")
        except OSError as exc:
            raise GuestError(f"cannot read {local}: {exc.strerror}") from None
        with source:
            handle = self._cmd("guest-file-open", {"path": remote, "mode": "wb"})
            written = 0
            done = False
            try:
                while chunk := source.read(self.chunk_size):
                    reply = self._cmd(
                        "guest-file-write",
                        {"handle": handle, "buf-b64": base64.b64encode(chunk).decode("ascii")},
                        timeout=self.file_timeout,
                    )
                    if int(reply.get("count", -1)) != len(chunk):
                        raise GuestError(f"short write to {remote} in the guest at byte {written}")
                    written += len(chunk)
                self._cmd("guest-file-flush", {"handle": handle}, timeout=self.file_timeout)
                done = True
            finally:
                self._close_handle(handle, quiet=not done)
        return written

    def get_file(self, remote: str, local: Path) -> int:
        partial = local.with_name(f".{local.name}.vmforge-part")
        try:
            sink = partial.open("wb")
        except OSError as exc:
            raise GuestError(f"cannot write {local}: {exc.strerror}") from None
        received = 0
        done = False
        try:
            handle = self._cmd("guest-file-open", {"path": remote, "mode": "rb"})
        except BaseException:
            sink.close()
            partial.unlink(missing_ok=True)
            raise
        try:
            with sink:
                while True:
                    reply = self._cmd(
                        "guest-file-read", {"handle": handle, "count": self.chunk_size}, timeout=self.file_timeout
                    )
                    data = base64.b64decode(reply.get("buf-b64", ""))
                    if len(data) != int(reply.get("count", -1)):
                        raise GuestError(f"the guest agent sent a garbled chunk of {remote} at byte {received}")
                    sink.write(data)
                    received += len(data)
                    if reply.get("eof") or not data:
                        break
                sink.flush()
                os.fsync(sink.fileno())
            done = True
        finally:
            self._close_handle(handle, quiet=not done)
            if not done:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
        partial.replace(local)
        return received

    # -- identity -----------------------------------------------------------------------------
    def os_info(self) -> OsInfo:
        try:
            info = self._cmd("guest-get-osinfo")
        except GuestCommandError:
            return OsInfo("unknown", "", "", "", "", "")
        os_id = str(info.get("id", ""))
        family = "windows" if os_id == "mswindows" else "linux" if "kernel-release" in info else "unknown"
        return OsInfo(
            family=family,
            id=os_id,
            name=str(info.get("pretty-name") or info.get("name") or ""),
            version=str(info.get("version-id") or info.get("version") or ""),
            kernel_release=str(info.get("kernel-release", "")),
            machine=str(info.get("machine", "")),
        )

    def close(self) -> None:
        self.channel.close()
