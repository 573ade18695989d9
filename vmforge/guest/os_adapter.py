"""What an OS adapter provides: the OS-specific half of talking to a guest.

The transport moves bytes and runs argv; the adapter knows how a script becomes argv, how the
guest hashes a file (so copies are verified *in the guest*), what identifies the current boot
(reboot detection), how to reboot and shut down, and where temporary files go.
"""

from __future__ import annotations

import abc
import re

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class OsAdapter(abc.ABC):
    family: str

    @abc.abstractmethod
    def script_argv(self, script: str) -> list[str]:
        """argv that runs ``script`` in the guest's native shell."""

    @abc.abstractmethod
    def hash_argv(self, remote: str) -> list[str]:
        """argv that prints the SHA-256 of ``remote``."""

    def parse_hash(self, stdout: bytes) -> str:
        """The hex digest from ``hash_argv``'s output; ValueError when there is none."""
        text = stdout.decode("utf-8", "replace").strip().lower()
        match = _SHA256_RE.match(text)
        if match is None:
            raise ValueError(f"no SHA-256 digest in {text[:120]!r}")
        return match.group(0)

    @abc.abstractmethod
    def boot_id_argv(self) -> list[str]:
        """argv that prints a value which changes with every boot."""

    @abc.abstractmethod
    def reboot_argv(self) -> list[str]:
        """argv that reboots the guest shortly after returning."""

    @abc.abstractmethod
    def shutdown_argv(self) -> list[str]:
        """argv that powers the guest off shortly after returning."""

    @abc.abstractmethod
    def mkdir_argv(self, remote_dir: str) -> list[str]:
        """argv that creates ``remote_dir`` with its parents."""

    @abc.abstractmethod
    def temp_dir(self) -> str:
        """vmforge's folder for temporary files in the guest."""

    @abc.abstractmethod
    def join(self, directory: str, name: str) -> str:
        """A guest path for ``name`` inside ``directory``."""
