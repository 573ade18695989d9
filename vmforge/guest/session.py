"""A guest session: a transport plus the adapter for the guest's OS.

This is what commands use: copies verified by hashing in the guest, scripts run in the guest's
shell, reboots detected by a changed boot identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from vmforge.guest.os_adapter import OsAdapter
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.os_windows import WindowsAdapter
from vmforge.guest.transport import (
    Completed,
    GuestError,
    GuestTimeout,
    GuestTransport,
    OsInfo,
    accept_download,
    check_upload,
)
from vmforge.hashing import sha256_file

HASH_TIMEOUT = 300.0


def adapter_for(info: OsInfo) -> OsAdapter:
    if info.family == "windows":
        return WindowsAdapter()
    if info.family == "linux":
        return LinuxAdapter()
    raise GuestError(
        f"the guest reports an OS vmforge has no adapter for (id {info.id!r})",
        hint="vmforge drives Windows and Linux guests",
    )


class Guest:
    def __init__(
        self,
        transport: GuestTransport,
        adapter: OsAdapter | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self._adapter = adapter
        self._clock = clock
        self._sleep = sleep

    @property
    def adapter(self) -> OsAdapter:
        if self._adapter is None:
            self._adapter = adapter_for(self.transport.os_info())
        return self._adapter

    def run_script(self, script: str, *, timeout: float, stdin: bytes | None = None) -> Completed:
        return self.transport.run(self.adapter.script_argv(script), stdin=stdin, timeout=timeout)

    def remote_sha256(self, remote: str) -> str:
        result = self.transport.run(self.adapter.hash_argv(remote), timeout=HASH_TIMEOUT)
        if result.rc != 0:
            raise GuestError(
                f"hashing {remote} in the guest failed (exit {result.rc}): "
                f"{result.stderr.decode('utf-8', 'replace').strip()[:200]}"
            )
        try:
            return self.adapter.parse_hash(result.stdout)
        except ValueError as exc:
            raise GuestError(f"hashing {remote} in the guest: {exc}") from None

    def copy_in(self, local: Path, remote: str) -> str:
        """Copy into the guest and prove it with the guest's own hash; returns the digest."""
        expected = sha256_file(local)
        self.transport.put_file(local, remote)
        check_upload(remote, guest_sha256=self.remote_sha256(remote), host_sha256=expected)
        return expected

    def copy_out(self, remote: str, local: Path) -> str:
        """Copy out of the guest, checked against the guest's hash taken before the copy."""
        expected = self.remote_sha256(remote)
        self.transport.get_file(remote, local)
        accept_download(local, remote, sha256=sha256_file(local), guest_sha256=expected, final=local)
        return expected

    def boot_id(self) -> str:
        result = self.transport.run(self.adapter.boot_id_argv(), timeout=60.0)
        text = result.stdout.decode("utf-8", "replace").strip()
        if result.rc != 0 or not text:
            raise GuestError(f"reading the guest's boot identity failed (exit {result.rc})")
        return text

    def reboot(self, deadline: float) -> str:
        """Reboot and wait until a *new* boot answers; returns its boot identity."""
        before = self.boot_id()
        result = self.transport.run(self.adapter.reboot_argv(), timeout=60.0)
        if result.rc != 0:
            raise GuestError(f"the guest refused to reboot (exit {result.rc})")
        return self.wait_new_boot(before, deadline)

    def wait_new_boot(self, before: str, deadline: float) -> str:
        while True:
            self.transport.wait_ready(deadline)
            try:
                now = self.boot_id()
            except GuestError:
                # Went down between ping and exec, or the new agent does not know the old
                # agent's exec pid ("Invalid parameter 'pid'"): not up yet, keep waiting.
                now = before
            if now != before:
                return now
            if self._clock() >= deadline:
                raise GuestTimeout(
                    f"the guest on {self.transport.name} did not come back from the reboot in time",
                    hint="it may still be shutting down; look at its serial console",
                )
            self._sleep(0.5)
