"""The guest transport interface: run programs in a guest and move files, whatever the wire.

The QEMU guest agent implements it now (:mod:`vmforge.guest.agent`); WinRM and SSH will later.
Everything OS-specific (how a script becomes argv, how to hash a file) lives in the OS adapters
(:mod:`vmforge.guest.os_linux`, :mod:`vmforge.guest.os_windows`), never here.

Contract:

- ``run`` returns a :class:`Completed` whatever the program's exit code; only a failure of the
  transport itself (guest unreachable, timed out, protocol error) raises :class:`GuestError`.
- Deadlines are absolute values of the transport's clock (``time.monotonic`` unless injected);
  timeouts are seconds.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vmforge.errors import VmforgeError


class GuestError(VmforgeError):
    """Talking to the guest failed (not: a program in the guest exited non-zero)."""


class GuestUnreachable(GuestError):
    """The transport could not reach the guest, or lost it mid-operation."""


class GuestTimeout(GuestUnreachable):
    """The guest did not answer within the time allowed."""


class GuestCommandError(GuestError):
    """The guest side refused an operation (no such file, permission denied …)."""


class CopyVerificationFailed(GuestError):
    """A copied file's hash in the guest differs from the host's."""


@dataclass(frozen=True)
class Completed:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class OsInfo:
    family: str  # "windows", "linux" or "unknown"
    id: str
    name: str
    version: str
    kernel_release: str
    machine: str


class GuestTransport(abc.ABC):
    """How vmforge reaches into a guest."""

    #: Human name of the channel, used in every error ("guest agent on unix socket /x").
    name: str

    @abc.abstractmethod
    def wait_ready(self, deadline: float) -> None:
        """Return once the guest answers; GuestTimeout naming the channel at ``deadline``."""

    @abc.abstractmethod
    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        """Run ``argv`` (argv[0] looked up on the guest's PATH) and wait at most ``timeout`` s."""

    @abc.abstractmethod
    def put_file(self, local: Path, remote: str) -> int:
        """Copy a host file into the guest (replacing ``remote``); returns bytes written."""

    @abc.abstractmethod
    def get_file(self, remote: str, local: Path) -> int:
        """Copy a guest file to the host; ``local`` appears only when complete."""

    @abc.abstractmethod
    def os_info(self) -> OsInfo:
        """What the guest says it runs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection (optional)."""
