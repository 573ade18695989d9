"""The guest transport over WinRM (WS-Management remote shell), using pywinrm's protocol layer.

Secure by default: HTTPS with the VM's own certificate pinned by fingerprint
(:mod:`vmforge.guest.winrm_http`) and NTLM with the VM's credentials.  Plain HTTP exists only when
the spec allows insecure access (NTLM then seals every message, as Windows does; Basic does not).

- Programs run in one remote shell (UTF-8 code page) through cmd.exe, so a command line must fit
  cmd.exe's 8191 characters.  Scripts arrive as the Windows adapter's ``-EncodedCommand`` argv;
  a script too long for that is uploaded to the guest's temp folder and run with ``-File``.
- Files travel on the command's stdin as base64 lines in WS-Man Send messages sized from the
  envelope limit; the guest script hashes what it wrote and the host compares.
- Every request has explicit connect/read timeouts and a WS-Man OperationTimeout; Receive
  operation timeouts (a normal event for a quiet long command) are retried until the caller's
  deadline.  Opening a shell is retried with bounded, jittered backoff; a running command is
  never replayed (it may not be idempotent) — losing the connection mid-command is an error.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from vmforge.guest.certs import fetch_certificate, fingerprint_der, show_fingerprint
from vmforge.guest.clixml import decode_stderr, first_error_line
from vmforge.guest.os_windows import POWERSHELL, WindowsAdapter, encode_command, render_script
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
from vmforge.guest.winrm_http import MISMATCH_MARKER, PinnedTransport
from vmforge.logs import get_logger, register_secret

log = get_logger("guest.winrm")

T = TypeVar("T")

CMD_LINE_LIMIT = 8191  # cmd.exe's maximum command line, in characters
DEFAULT_MAX_ENVELOPE = 153600  # WinRM's default MaxEnvelopeSizekb (150) in bytes
ENVELOPE_OVERHEAD = 4096  # SOAP header and body of a Send, generously
READ_MARGIN = 10.0  # the read timeout exceeds the operation timeout by this much
OPERATION_TIMEOUT_FAULT = 2150858793  # "cannot complete the operation within OperationTimeout"
SHELL_NOT_FOUND_FAULTS = {2150858843}  # the shell or command is gone (e.g. after a reboot)
_CMD_SPECIAL = set(' \t"&|<>^()%!,;=')


class WinrmAuthError(GuestError):
    """The guest rejected vmforge's credentials."""


class CertificateMismatch(GuestError):
    """The guest presented a certificate other than the pinned one."""


class WinrmFault(GuestCommandError):
    """The guest's WinRM service answered with a WS-Management fault."""

    def __init__(self, message: str, wsman_code: int | None) -> None:
        super().__init__(message)
        self.wsman_code = wsman_code


@dataclass(frozen=True)
class WinrmEndpoint:
    host: str
    port: int
    scheme: str  # "https" or "http"
    auth: str  # "ntlm" or "basic"
    username: str
    password: str = field(repr=False)
    fingerprint: str | None = None  # SHA-256 hex of the pinned certificate (HTTPS)
    vm: str = ""  # for hints ("vmforge remote pin NAME")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/wsman"


def windows_command_line(argv: Sequence[str]) -> str:
    """argv as one Windows command line (MS C runtime rules), every argument cmd.exe could read
    as an operator quoted.  ``%`` still expands inside quotes in cmd.exe: avoid it in arguments."""
    parts = []
    for arg in argv:
        if arg and not (_CMD_SPECIAL & set(arg)):
            parts.append(arg)
            continue
        out, slashes = ['"'], 0
        for char in arg:
            if char == "\\":
                slashes += 1
                continue
            if char == '"':
                out.append("\\" * (2 * slashes + 1) + '"')
            else:
                out.append("\\" * slashes + char)
            slashes = 0
        out.append("\\" * (2 * slashes) + '"')
        parts.append("".join(out))
    return " ".join(parts)


def upload_chunk_size(max_envelope: int) -> int:
    """File bytes per Send: the stdin payload is a base64 line, itself base64'd into the envelope."""
    stdin_bytes = (max_envelope - ENVELOPE_OVERHEAD) // 4 * 3
    return max(3, (stdin_bytes - 2) // 4 * 3)


class WinrmTransport(GuestTransport):
    def __init__(
        self,
        endpoint: WinrmEndpoint,
        *,
        operation_timeout: float = 20.0,
        connect_timeout: float = 10.0,
        open_attempts: int = 4,
        file_timeout: float = 3600.0,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if endpoint.scheme == "https" and not endpoint.fingerprint:
            raise GuestError(
                f"no certificate is pinned for WinRM on {endpoint.host}:{endpoint.port}",
                hint=f"run 'vmforge remote pin {endpoint.vm or 'NAME'}' to record the guest's certificate",
            )
        register_secret(endpoint.password)
        self.endpoint = endpoint
        self.name = f"WinRM {endpoint.scheme.upper()} on {endpoint.host}:{endpoint.port}"
        self.operation_timeout = max(1.0, operation_timeout)
        self.connect_timeout = connect_timeout
        self.open_attempts = open_attempts
        self.file_timeout = file_timeout
        self.max_envelope = max_envelope
        self.chunk_size = upload_chunk_size(max_envelope)
        self.adapter = WindowsAdapter()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._protocol: Protocol | None = None
        self._shell: str | None = None

    # -- connection -----------------------------------------------------------------------------
    def _new_protocol(self) -> Protocol:
        read_timeout = self.operation_timeout + READ_MARGIN
        protocol = Protocol(
            self.endpoint.url,
            transport="plaintext",  # replaced below; pywinrm wants a valid name here
            username=self.endpoint.username,
            password=self.endpoint.password,
            read_timeout_sec=int(read_timeout),
            operation_timeout_sec=int(self.operation_timeout),
        )
        protocol.max_env_sz = self.max_envelope
        protocol.transport = PinnedTransport(
            endpoint=self.endpoint.url,
            username=self.endpoint.username,
            password=self.endpoint.password,
            auth_method=self.endpoint.auth,
            message_encryption="auto",
            fingerprint=self.endpoint.fingerprint,
            connect_timeout=self.connect_timeout,
            read_timeout=read_timeout,
        )
        return protocol

    def _translate(self, exc: BaseException, doing: str) -> GuestError:
        """A pywinrm/requests exception as one readable vmforge error (never with the password)."""
        if isinstance(exc, GuestError):
            return exc
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        if isinstance(exc, requests.exceptions.SSLError) and MISMATCH_MARKER in str(exc):
            return self._mismatch()
        if isinstance(exc, InvalidCredentialsError):
            return WinrmAuthError(
                f"{self.name} rejected the credentials of user {self.endpoint.username!r} while {doing}",
                hint="the password in the VM's secrets no longer matches the guest's; "
                "check windows.admin_user, or reset the password from the console",
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return GuestTimeout(
                f"{self.name} did not answer while {doing} (connect {self.connect_timeout:g}s, "
                f"read {self.operation_timeout + READ_MARGIN:g}s)",
                hint="is the guest up, its firewall open for WinRM, and remote.address right?",
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return GuestUnreachable(
                f"TLS with {where} failed while {doing}: {exc.__class__.__name__}",
                hint="is the WinRM HTTPS listener configured with vmforge's certificate?",
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return GuestUnreachable(
                f"cannot reach {self.name} while {doing} (connection refused, reset or closed)",
                hint="is the guest running with WinRM enabled and remote.address right?",
            )
        if isinstance(exc, WSManFaultError):
            code = f" (WS-Man fault {exc.wsman_fault_code})" if exc.wsman_fault_code else ""
            reason = " ".join((exc.reason or "").split())
            return WinrmFault(f"the guest's WinRM service refused {doing}{code}: {reason}", exc.wsman_fault_code)
        if isinstance(exc, requests.exceptions.RequestException):
            return GuestUnreachable(f"the connection to {self.name} failed while {doing}: {exc.__class__.__name__}")
        if isinstance(exc, WinRMTransportError):
            return GuestUnreachable(f"{self.name} answered HTTP {exc.code} while {doing}")
        if isinstance(exc, WinRMError | ValueError | KeyError | StopIteration):
            return GuestError(f"{self.name} sent an unexpected answer while {doing}: {exc.__class__.__name__}")
        return GuestError(f"talking to {self.name} failed while {doing}: {exc.__class__.__name__}")

    def _mismatch(self) -> CertificateMismatch:
        host, port = self.endpoint.host, self.endpoint.port
        try:
            actual = show_fingerprint(fingerprint_der(fetch_certificate(host, port, self.connect_timeout)))
        except GuestError:
            actual = "(could not read it again)"
        return CertificateMismatch(
            f"the WinRM certificate of {host}:{port} is not the one pinned for this VM "
            f"(pinned {show_fingerprint(self.endpoint.fingerprint or '')}, presented {actual})",
            hint="if the guest's certificate was replaced on purpose, check the fingerprint on the guest "
            f"(Get-ChildItem Cert:\\LocalMachine\\My) and run 'vmforge remote pin {self.endpoint.vm or 'NAME'} "
            "--fingerprint SHA256'; otherwise something else answers at that address",
        )

    def _call(self, doing: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (WinRMOperationTimeoutError, KeyboardInterrupt):
            raise
        except Exception as exc:
            error = self._translate(exc, doing)
            if isinstance(error, GuestUnreachable):
                self._drop()
            raise error from None

    def _drop(self) -> None:
        """Forget the connection and shell (the next operation reconnects)."""
        if self._protocol is not None:
            with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to do
                self._protocol.transport.close_session()
        self._protocol = None
        self._shell = None

    def _ensure_shell(self) -> str:
        """An open remote shell, reconnecting with bounded jittered backoff."""
        if self._shell is not None:
            return self._shell
        delays = backoff(self._rng, initial=0.5, maximum=8.0)
        for attempt in range(1, self.open_attempts + 1):
            try:
                if self._protocol is None:
                    self._protocol = self._new_protocol()
                self._shell = self._call(
                    "opening a remote shell", partial(self._protocol.open_shell, codepage=65001, noprofile=True)
                )
                return self._shell
            except GuestUnreachable as exc:
                if attempt == self.open_attempts:
                    raise
                delay = next(delays)
                log.debug("WinRM shell on %s failed (%s); retry %d in %.1fs", self.name, exc.message, attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- GuestTransport -----------------------------------------------------------------------------
    def wait_ready(self, deadline: float) -> None:
        def open_once() -> None:
            self._drop()
            attempts, self.open_attempts = self.open_attempts, 1
            try:
                self._ensure_shell()
            finally:
                self.open_attempts = attempts

        retry_until(
            open_once,
            deadline=deadline,
            delays=backoff(self._rng, initial=0.5, maximum=12.0),
            clock=self._clock,
            sleep=self._sleep,
            timed_out=lambda last: GuestTimeout(
                f"{self.name} did not answer in time" + (f" (last error: {last.message})" if last else ""),
                hint="WinRM starts late in Windows' boot; is the guest up and remote.address right?",
            ),
            fatal=(WinrmAuthError, CertificateMismatch),  # waiting will not fix these
        )

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        if not argv:
            raise GuestError("nothing to run: empty argv")
        deadline = self._clock() + timeout
        command_line = self._fit(argv, deadline)
        chunks = None if stdin is None else _slices(stdin, self.chunk_size)
        out: list[bytes] = []
        rc, stderr = self._execute(command_line, chunks, out.append, deadline, label=argv[0])
        return Completed(rc, b"".join(out), decode_stderr(stderr))

    def put_file(self, local: Path, remote: str) -> int:
        try:
            source = local.open("rb")
        except OSError as exc:
            raise GuestError(f"cannot read {local}: {exc.strerror}") from None
        with source:
            digest = hashlib.sha256()
            size = 0

            def lines() -> Iterator[bytes]:
                nonlocal size
                while block := source.read(self.chunk_size):
                    digest.update(block)
                    size += len(block)
                    yield base64.b64encode(block) + b"\n"

            reported = self._receive_in_guest(lines(), remote)
            check_upload(remote, guest_sha256=reported, host_sha256=digest.hexdigest())
            return size

    def get_file(self, remote: str, local: Path) -> int:
        script = render_script("send-file", path=remote, chunk_size=self.chunk_size)
        partial = local.with_name(f".{local.name}.vmforge-part")
        digest = hashlib.sha256()
        pending = bytearray()
        guest_sha256: str | None = None
        size = 0
        with partial.open("wb") as sink:

            def consume(data: bytes) -> None:
                nonlocal size
                pending.extend(data)
                while (newline := pending.find(b"\n")) >= 0:
                    line = bytes(pending[:newline]).strip()
                    del pending[: newline + 1]
                    block = base64.b64decode(line, validate=True)
                    digest.update(block)
                    sink.write(block)
                    size += len(block)

            try:
                rc, stderr = self._execute(
                    self._fit(self.adapter.script_argv(script), None),
                    None,
                    consume,
                    self._clock() + self.file_timeout,
                    label=f"reading {remote}",
                )
                tail = bytes(pending).strip().decode("ascii", "replace")
                if tail.startswith("sha256:"):
                    guest_sha256 = tail[len("sha256:") :]
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        if rc != 0:
            partial.unlink(missing_ok=True)
            raise GuestCommandError(f"reading {remote} in the guest failed: {first_error_line(stderr)}")
        accept_download(partial, remote, sha256=digest.hexdigest(), guest_sha256=guest_sha256, final=local)
        return size

    def os_info(self) -> OsInfo:
        result = self.run(self.adapter.script_argv(render_script("os-info")), timeout=60.0)
        if result.rc != 0:
            raise GuestError(f"asking the guest for its OS failed: {first_error_line(result.stderr)}")
        try:
            data: dict[str, Any] = json.loads(result.stdout.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            raise GuestError(f"the guest described its OS unreadably: {result.stdout[:120]!r}") from None
        return OsInfo(
            family="windows",
            id=str(data.get("id", "mswindows")),
            name=str(data.get("name", "")),
            version=str(data.get("version", "")),
            kernel_release=str(data.get("kernel_release", "")),
            machine=str(data.get("machine", "")),
        )

    def close(self) -> None:
        if self._protocol is not None and self._shell is not None:
            protocol, shell = self._protocol, self._shell
            try:
                self._call("closing the remote shell", lambda: protocol.close_shell(shell))
            except GuestError as exc:
                log.debug("closing the WinRM shell failed: %s", exc.message)
        self._drop()

    # -- internals --------------------------------------------------------------------------------
    def _fit(self, argv: Sequence[str], deadline: float | None) -> str:
        """The command line for ``argv``; an encoded script too long for cmd.exe runs from a file."""
        line = windows_command_line(argv)
        if len(line) <= CMD_LINE_LIMIT:
            return line
        if list(argv[:-1]) != POWERSHELL:
            raise GuestError(
                f"the command line for {argv[0]} is {len(line)} characters; cmd.exe allows {CMD_LINE_LIMIT}",
                hint="put long input in a file (put_file) or on stdin",
            )
        script = base64.b64decode(argv[-1]).decode("utf-16-le")
        data = b"\xef\xbb\xbf" + script.encode("utf-8")  # BOM: Windows PowerShell reads UTF-8 only with it
        name = f"script-{hashlib.sha256(data).hexdigest()[:16]}.ps1"
        remote = self.adapter.join(self.adapter.temp_dir(), name)
        lines = (base64.b64encode(block) + b"\n" for block in _slices(data, self.chunk_size))
        check_upload(
            remote, guest_sha256=self._receive_in_guest(lines, remote), host_sha256=hashlib.sha256(data).hexdigest()
        )
        return windows_command_line(
            ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", remote]
        )

    def _receive_in_guest(self, lines: Iterable[bytes], remote: str) -> str:
        """Stream base64 ``lines`` into ``remote``; returns the SHA-256 the guest computed."""
        script = render_script("receive-file", path=remote)
        out: list[bytes] = []
        rc, stderr = self._execute(
            windows_command_line([*POWERSHELL, encode_command(script)]),
            lines,
            out.append,
            self._clock() + self.file_timeout,
            label=f"writing {remote}",
        )
        if rc != 0:
            raise GuestCommandError(f"writing {remote} in the guest failed: {first_error_line(stderr)}")
        return b"".join(out).decode("ascii", "replace").strip().lower()

    def _execute(
        self,
        command_line: str,
        stdin: Iterable[bytes] | None,
        on_stdout: Callable[[bytes], None],
        deadline: float,
        *,
        label: str,
    ) -> tuple[int, bytes]:
        """Run one command line in the shell; stream stdout to ``on_stdout``; (rc, stderr)."""
        shell = self._ensure_shell()
        protocol = self._protocol
        assert protocol is not None
        # stdin as a pipe, not a console, when vmforge feeds it (what PowerShell's reader expects)
        console = stdin is None
        try:
            command = self._call(f"starting {label}", partial(protocol.run_command, shell, command_line, (), console))
        except WinrmFault as exc:
            if exc.wsman_code not in SHELL_NOT_FOUND_FAULTS:
                raise
            self._drop()  # the shell is gone (the guest rebooted): one new shell, command not yet run
            shell = self._ensure_shell()
            assert self._protocol is not None
            protocol = self._protocol
            command = self._call(f"starting {label}", partial(protocol.run_command, shell, command_line, (), console))
        try:
            if stdin is not None:
                self._send_stdin(protocol, shell, command, stdin, label)
            stderr: list[bytes] = []
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise GuestTimeout(
                        f"{label} did not finish within its time in the guest ({self.name})",
                        hint="it may still be running there; raise the timeout if it needs longer",
                    )
                protocol.operation_timeout_sec = max(1, min(int(self.operation_timeout), int(remaining) or 1))
                try:
                    out, err, rc, done = self._call(
                        f"waiting for {label}", partial(protocol.get_command_output_raw, shell, command)
                    )
                except WinRMOperationTimeoutError:
                    continue  # nothing new yet: ask again until the deadline
                finally:
                    protocol.operation_timeout_sec = int(self.operation_timeout)
                if out:
                    on_stdout(out)
                stderr.append(err)
                if done:
                    return rc, b"".join(stderr)
        finally:
            if self._protocol is protocol:
                try:
                    self._call(f"ending {label}", partial(protocol.cleanup_command, shell, command))
                except GuestError as exc:
                    log.debug("signalling the end of %s failed: %s", label, exc.message)

    def _send_stdin(self, protocol: Protocol, shell: str, command: str, chunks: Iterable[bytes], label: str) -> None:
        pending: bytes | None = None
        for chunk in _regroup(chunks, self.chunk_size):
            if pending is not None:
                self._call(f"sending input to {label}", partial(protocol.send_command_input, shell, command, pending))
            pending = chunk
        last = pending or b""
        self._call(f"sending input to {label}", partial(protocol.send_command_input, shell, command, last, end=True))


def _slices(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _regroup(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Chunks joined up to ``limit`` bytes per Send (small lines ride together)."""
    buffer = bytearray()
    budget = (limit + 2) // 3 * 4 + 2  # one base64 line of a full file chunk
    for chunk in chunks:
        if buffer and len(buffer) + len(chunk) > budget:
            yield bytes(buffer)
            buffer.clear()
        buffer.extend(chunk)
    if buffer:
        yield bytes(buffer)
