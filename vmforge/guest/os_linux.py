"""The Linux guest adapter (POSIX sh, coreutils or busybox)."""

from __future__ import annotations

import posixpath

from vmforge.guest.os_adapter import OsAdapter


class LinuxAdapter(OsAdapter):
    family = "linux"

    def script_argv(self, script: str) -> list[str]:
        return ["sh", "-c", script]

    def hash_argv(self, remote: str) -> list[str]:
        # "--" so a path starting with "-" is never an option; stdin redirection would lose errors.
        return ["sha256sum", "--", remote]

    def boot_id_argv(self) -> list[str]:
        return ["cat", "/proc/sys/kernel/random/boot_id"]

    def reboot_argv(self) -> list[str]:
        # Detached and delayed, so guest-exec returns before the agent goes down.
        return self.script_argv("(sleep 1; reboot) >/dev/null 2>&1 </dev/null &")

    def shutdown_argv(self) -> list[str]:
        return self.script_argv("(sleep 1; poweroff) >/dev/null 2>&1 </dev/null &")

    def mkdir_argv(self, remote_dir: str) -> list[str]:
        return ["mkdir", "-p", "--", remote_dir]

    def temp_dir(self) -> str:
        return "/tmp/vmforge"  # noqa: S108 - a path in the guest, not on the host

    def join(self, directory: str, name: str) -> str:
        return posixpath.join(directory, name)
