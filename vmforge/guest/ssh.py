"""The guest transport over SSH (paramiko) for guests running OpenSSH.

- Authentication with the VM's own ed25519 key (from the 0600 secrets); no passwords.
- The host key is pinned: recorded on first contact (``on_first_key``), compared on every later
  connection; a different key is refused before authenticating, with how to re-pin.
- Files move over SFTP to a ``.vmforge-part`` name, renamed when complete, and are verified by
  hashing *in the guest* with the OS adapter's hash command.
- Explicit connect/auth/banner timeouts; a deadline on every command; connecting is retried
  with bounded, jittered backoff by :meth:`wait_ready` only.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import random
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from vmforge.guest.os_adapter import OsAdapter
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.os_windows import render_script
from vmforge.guest.retry import backoff, retry_until
from vmforge.guest.transport import (
    Completed,
    GuestCommandError,
    GuestError,
    GuestTimeout,
    GuestTransport,
    GuestUnreachable,
    OsInfo,
    accept_download,
    check_upload,
)
from vmforge.guest.winrm import windows_command_line
from vmforge.logs import get_logger, register_secret

log = get_logger("guest.ssh")


class HostKeyChanged(GuestError):
    """The guest's SSH host key differs from the pinned one."""


class SshAuthError(GuestError):
    """The guest refused vmforge's key."""


@dataclass(frozen=True)
class SshEndpoint:
    host: str
    port: int
    username: str
    private_key: str = field(repr=False)  # OpenSSH private key text
    host_key: str | None = None  # pinned "ssh-ed25519 AAAA…" line; None: first contact
    vm: str = ""


def host_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def host_key_fingerprint(line: str) -> str:
    """``SHA256:…`` as ssh-keygen -l prints it."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class SshTransport(GuestTransport):
    def __init__(
        self,
        endpoint: SshEndpoint,
        adapter: OsAdapter | None = None,
        *,
        on_first_key: Callable[[str], None] | None = None,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.adapter = adapter or LinuxAdapter()
        self.name = f"SSH on {endpoint.host}:{endpoint.port}"
        self.connect_timeout = connect_timeout
        self._on_first_key = on_first_key
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._client: paramiko.Transport | None = None
        register_secret(endpoint.private_key)

    # -- connection -----------------------------------------------------------------------------
    def _key(self) -> paramiko.PKey:
        try:
            return paramiko.Ed25519Key.from_private_key(io.StringIO(self.endpoint.private_key))
        except (paramiko.SSHException, ValueError):
            raise GuestError("the VM's SSH private key in its secrets is unreadable") from None

    def _connect(self) -> paramiko.Transport:
        if self._client is not None and self._client.is_active():
            return self._client
        self._drop()
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.connect_timeout)
        except TimeoutError:
            raise GuestTimeout(
                f"connecting to {self.name} timed out after {self.connect_timeout:g}s",
                hint="is the guest up, sshd running and remote.address/ssh_port right?",
            ) from None
        except OSError as exc:
            raise GuestUnreachable(
                f"cannot connect to {self.name}: {exc.strerror or exc}",
                hint="is the guest up, sshd running and remote.address/ssh_port right?",
            ) from None
        client = paramiko.Transport(sock)
        client.banner_timeout = self.connect_timeout
        client.auth_timeout = self.connect_timeout
        try:
            client.start_client(timeout=self.connect_timeout)
            presented = host_key_line(client.get_remote_server_key())
            if self.endpoint.host_key is None:
                if self._on_first_key is not None:
                    self._on_first_key(presented)
                self.endpoint = dataclasses.replace(self.endpoint, host_key=presented)
            elif presented != self.endpoint.host_key:
                raise HostKeyChanged(
                    f"the SSH host key of {where} is not the one pinned for this VM "
                    f"(pinned {host_key_fingerprint(self.endpoint.host_key)}, "
                    f"presented {host_key_fingerprint(presented)})",
                    hint="if the guest's host key was regenerated on purpose, compare it on the guest "
                    f"(ssh-keygen -lf on its host key) and run 'vmforge remote pin {self.endpoint.vm or 'NAME'} "
                    "--channel ssh --reset'; otherwise something else answers at that address",
                )
            client.auth_publickey(self.endpoint.username, self._key())
        except paramiko.AuthenticationException:
            client.close()
            raise SshAuthError(
                f"{self.name} refused the VM's key for user {self.endpoint.username!r}",
                hint="is the VM's public key in that user's authorized_keys (administrators_authorized_keys "
                "on Windows)?",
            ) from None
        except GuestError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise GuestUnreachable(f"the SSH handshake with {where} failed: {exc}") from None
        self._client = client
        return client

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def _sftp(self) -> paramiko.SFTPClient:
        try:
            sftp = paramiko.SFTPClient.from_transport(self._connect())
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise GuestUnreachable(f"opening SFTP on {self.name} failed: {exc}") from None
        if sftp is None:
            raise GuestUnreachable(f"{self.name} offers no SFTP subsystem")
        sftp.get_channel().settimeout(self.connect_timeout * 6)  # type: ignore[union-attr]
        return sftp

    # -- GuestTransport -------------------------------------------------------------------------
    def wait_ready(self, deadline: float) -> None:
        retry_until(
            self._connect,
            deadline=deadline,
            delays=backoff(self._rng, initial=0.2, maximum=12.0),
            clock=self._clock,
            sleep=self._sleep,
            timed_out=lambda last: GuestTimeout(
                f"{self.name} did not answer in time" + (f" (last error: {last.message})" if last else "")
            ),
            retry_on=(GuestUnreachable,),
        )

    def command_line(self, argv: Sequence[str]) -> str:
        """Linux: a POSIX sh line; Windows OpenSSH (cmd.exe as its shell): a Windows command line."""
        return windows_command_line(argv) if self.adapter.family == "windows" else shlex.join(argv)

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        if not argv:
            raise GuestError("nothing to run: empty argv")
        deadline = self._clock() + timeout
        try:
            channel = self._connect().open_session(timeout=self.connect_timeout)
            channel.settimeout(self.connect_timeout)
            channel.exec_command(self.command_line(argv))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise GuestUnreachable(f"starting {argv[0]} over {self.name} failed: {exc}") from None
        feeder = None
        if stdin is not None:

            def feed() -> None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    channel.sendall(stdin)
                    channel.shutdown_write()

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
        else:
            channel.shutdown_write()
        out, err = bytearray(), bytearray()
        try:
            while True:
                busy = False
                if channel.recv_ready():
                    out.extend(channel.recv(65536))
                    busy = True
                if channel.recv_stderr_ready():
                    err.extend(channel.recv_stderr(65536))
                    busy = True
                # OpenSSH may send the exit status while output is still held back by the channel
                # window: done only once the output has ended (EOF) and is all read.
                drained = not channel.recv_ready() and not channel.recv_stderr_ready()
                if channel.exit_status_ready() and channel.eof_received and drained:
                    break
                if channel.closed and not busy:
                    break
                if self._clock() >= deadline:
                    raise GuestTimeout(
                        f"{argv[0]} did not finish within {timeout:g}s in the guest ({self.name})",
                        hint="it may still be running there; raise the timeout if it needs longer",
                    )
                if not busy:
                    time.sleep(0.005)
            rc = channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._drop()
            raise GuestUnreachable(f"lost {self.name} while {argv[0]} ran: {exc}") from None
        finally:
            channel.close()
            if feeder is not None:
                feeder.join(timeout=1.0)
        if rc < 0:
            raise GuestUnreachable(f"{self.name} closed the session before {argv[0]} reported its exit status")
        return Completed(rc, bytes(out), bytes(err))

    def _guest_hash(self, remote: str) -> str:
        result = self.run(self.adapter.hash_argv(remote), timeout=300.0)
        if result.rc != 0:
            raise GuestCommandError(
                f"hashing {remote} in the guest failed (exit {result.rc}): "
                f"{result.stderr.decode('utf-8', 'replace').strip()[:200]}"
            )
        try:
            return self.adapter.parse_hash(result.stdout)
        except ValueError as exc:
            raise GuestError(f"hashing {remote} in the guest: {exc}") from None

    def put_file(self, local: Path, remote: str) -> int:
        digest = hashlib.sha256()
        partial = f"{remote}.vmforge-part"
        sftp = self._sftp()
        try:
            with local.open("rb") as source, sftp.open(partial, "wb") as sink:
                sink.set_pipelined(True)
                size = 0
                while block := source.read(262144):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
            with contextlib.suppress(OSError):
                sftp.remove(remote)
            sftp.rename(partial, remote)
        except FileNotFoundError as exc:
            raise GuestCommandError(f"copying {local} to {remote}: {exc.strerror or 'no such file'}") from None
        except PermissionError:
            raise GuestCommandError(f"copying {local} to {remote}: permission denied") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._drop()
            raise GuestUnreachable(f"copying {local} to {remote} over {self.name} failed: {exc}") from None
        finally:
            sftp.close()
        check_upload(remote, guest_sha256=self._guest_hash(remote), host_sha256=digest.hexdigest())
        return size

    def get_file(self, remote: str, local: Path) -> int:
        expected = self._guest_hash(remote)
        partial = local.with_name(f".{local.name}.vmforge-part")
        digest = hashlib.sha256()
        sftp = self._sftp()
        size = 0
        try:
            with sftp.open(remote, "rb") as source, partial.open("wb") as sink:
                source.prefetch()
                while block := source.read(262144):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
        except FileNotFoundError:
            partial.unlink(missing_ok=True)
            raise GuestCommandError(f"{remote} does not exist in the guest") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            partial.unlink(missing_ok=True)
            self._drop()
            raise GuestUnreachable(f"copying {remote} over {self.name} failed: {exc}") from None
        finally:
            sftp.close()
        accept_download(partial, remote, sha256=digest.hexdigest(), guest_sha256=expected, final=local)
        return size

    def os_info(self) -> OsInfo:
        if self.adapter.family == "windows":
            result = self.run(self.adapter.script_argv(render_script("os-info")), timeout=60.0)
            try:
                data = json.loads(result.stdout.decode("utf-8", "replace"))
            except json.JSONDecodeError:
                raise GuestError(f"the guest described its OS unreadably: {result.stdout[:120]!r}") from None
            return OsInfo(
                "windows",
                "mswindows",
                str(data.get("name", "")),
                str(data.get("version", "")),
                str(data.get("kernel_release", "")),
                str(data.get("machine", "")),
            )
        result = self.run(["sh", "-c", "cat /etc/os-release 2>/dev/null; echo; uname -r; uname -m"], timeout=60.0)
        lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
        release = {k: v.strip('"') for k, _, v in (line.partition("=") for line in lines if "=" in line)}
        tail = [line for line in lines if "=" not in line and line.strip()]
        return OsInfo(
            family="linux",
            id=release.get("ID", ""),
            name=release.get("PRETTY_NAME", release.get("NAME", "")),
            version=release.get("VERSION_ID", ""),
            kernel_release=tail[-2] if len(tail) >= 2 else "",
            machine=tail[-1] if tail else "",
        )

    def close(self) -> None:
        self._drop()
