"""The guest transport interface: run programs in a guest and move files, whatever the wire.

The QEMU guest agent (:mod:`vmforge.guest.agent`), WinRM (:mod:`vmforge.guest.winrm`) and SSH
(:mod:`vmforge.guest.ssh`) implement it; copies end in :func:`check_upload` / :func:`accept_download`.
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


def check_upload(remote: str, *, guest_sha256: str, host_sha256: str) -> None:
    """An upload counts only when the guest's hash of ``remote`` is the host's."""
    if guest_sha256 != host_sha256:
        raise CopyVerificationFailed(
            f"{remote} in the guest hashes to {guest_sha256 or 'nothing'}, not {host_sha256} like the host's file",
            hint="the copy was damaged on the way, or the file changed in the guest; copy it again",
        )


def accept_download(received: Path, remote: str, *, sha256: str, guest_sha256: str | None, final: Path) -> None:
    """The tail of every download: ``received`` (hashing to ``sha256``) becomes ``final`` only
    when the guest's hash of ``remote`` agrees; otherwise it is deleted and the copy fails."""
    if sha256 != guest_sha256:
        received.unlink(missing_ok=True)
        raise CopyVerificationFailed(
            f"{remote} arrived with SHA-256 {sha256}, but the guest hashes it to {guest_sha256 or 'nothing'}",
            hint="the file changed in the guest during the copy, or the copy was damaged; copy it again",
        )
    if received != final:
        received.replace(final)


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
