"""A loopback WS-Management server for tests: HTTP or HTTPS, NTLM (pyspnego as the accepting
side, with channel binding on HTTPS and Windows-style message encryption on HTTP) or Basic.

The WS-Man layer answers Create/Command/Send/Receive/Signal/Delete like the recorded Windows
host; what the commands *do* is simulated by :mod:`tests.winrm_server.emulation`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from spnego.channel_bindings import GssChannelBindings

from tests.winrm_server import envelopes as env
from tests.winrm_server.emulation import EmulatedWindows, Fault, Process

BOUNDARY = b"--Encrypted Boundary"
PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"


@dataclass
class Shell:
    id: str
    commands: dict[str, Process] = field(default_factory=dict)


@dataclass
class ServerConfig:
    username: str
    password: str
    auth: str = "ntlm"  # "ntlm" or "basic"
    cert_pem: str | None = None  # HTTPS when set
    key_pem: str | None = None
    max_envelope: int = 153600


class WsmanService:
    """Shells and commands; one instance per server (per simulated boot it is reset)."""

    def __init__(self, guest: EmulatedWindows, owner: str) -> None:
        self.guest = guest
        self.owner = owner
        self.shells: dict[str, Shell] = {}
        self.lock = threading.Lock()
        self.machine = "127.0.0.1"

    def reset(self) -> None:
        with self.lock:
            for shell in self.shells.values():
                for process in shell.commands.values():
                    process.terminate()
            self.shells.clear()

    def handle(self, data: bytes, endpoint: str, client_ip: str, max_envelope: int) -> tuple[int, bytes]:
        request = env.Request(data)
        action = request.action.rsplit("/", 1)[-1]
        relates = request.message_id
        try:
            if action == "Create":
                shell = Shell(str(uuid.uuid4()).upper())
                with self.lock:
                    self.shells[shell.id] = shell
                return 200, env.create_response(relates, endpoint, shell.id, self.owner, client_ip)
            shell = self.shells.get(request.shell_id)
            if shell is None:
                return 500, env.fault("bad_shell_id", relates, self.machine)
            if action == "Delete":
                with self.lock:
                    self.shells.pop(shell.id, None)
                for process in shell.commands.values():
                    process.terminate()
                return 200, env.delete_response(relates)
            if action == "Command":
                line = request.text("s:Body/rsp:CommandLine/rsp:Command")
                args = [n.text or "" for n in request.root.iterfind("s:Body/rsp:CommandLine/rsp:Arguments", env.NS)]
                skip = request.options.get("WINRS_SKIP_CMD_SHELL", "False").lower() == "true"
                command_id = str(uuid.uuid4()).upper()
                shell.commands[command_id] = self.guest.start(" ".join([line, *args]), skip_cmd_shell=skip)
                return 200, env.command_response(relates, command_id)
            if action == "Send":
                stream = request.root.find("s:Body/rsp:Send/rsp:Stream", env.NS)
                process = shell.commands.get(stream.get("CommandId", "")) if stream is not None else None
                if stream is None or process is None:
                    return 500, env.fault("bad_command_id", relates, self.machine)
                process.feed(base64.b64decode(stream.text or ""), stream.get("End", "").lower() == "true")
                return 200, env.send_response(relates)
            if action == "Receive":
                desired = request.root.find("s:Body/rsp:Receive/rsp:DesiredStream", env.NS)
                if desired is None or desired.get("CommandId") is None:
                    return 500, env.fault("invalid_parameter", relates, self.machine)
                command_id = desired.get("CommandId", "")
                process = shell.commands.get(command_id)
                if process is None:
                    return 500, env.fault("bad_command_id", relates, self.machine)
                streams, done = process.take(max_envelope // 2, request.operation_timeout)
                if not streams and not done:
                    return 500, env.fault("timed_out", relates, self.machine)
                return 200, env.receive_response(relates, command_id, streams, done, process.exit_code)
            if action == "Signal":
                signal = request.root.find("s:Body/rsp:Signal", env.NS)
                command_id = signal.get("CommandId", "") if signal is not None else ""
                process = shell.commands.pop(command_id, None)
                if process is None:
                    return 500, env.fault("bad_command_id", relates, self.machine)
                process.terminate()
                return 200, env.signal_response(relates)
            return 500, env.fault("invalid_parameter", relates, self.machine)
        except Fault as exc:
            return 500, env.fault(exc.kind, relates, self.machine)


def certificate_binding(cert_pem: str) -> bytes:
    """tls-server-end-point channel-binding data (RFC 5929) for the server's certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return b"tls-server-end-point:" + digest.finalize()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WinrmTestServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.ntlm: Any = None
        self.authenticated = False

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _challenge(self, token: str | None = None) -> None:
        offers = {"WWW-Authenticate": f"Negotiate {token}" if token else "Negotiate"}
        if self.server.config.auth == "basic" and token is None:
            offers["WWW-Authenticate"] = 'Basic realm="WSMAN"'
        self._reply(401, b"", offers)

    def do_POST(self) -> None:
        server = self.server
        if server.drop_connections.is_set():
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        config = server.config
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not self.authenticated:
            if config.auth == "basic" and scheme.lower() == "basic":
                user, _, password = base64.b64decode(token).decode().partition(":")
                if (user, password) != (config.username, config.password):
                    self._challenge()
                    return
                self.authenticated = True
            elif config.auth == "ntlm" and scheme.lower() in ("negotiate", "ntlm") and token:
                if self.ntlm is None:
                    bindings = None
                    if config.cert_pem:
                        bindings = GssChannelBindings(application_data=certificate_binding(config.cert_pem))
                    self.ntlm = spnego.server(protocol="ntlm", channel_bindings=bindings)
                try:
                    out = self.ntlm.step(base64.b64decode(token))
                except spnego.exceptions.SpnegoError:
                    self.ntlm = None
                    server.auth_failures += 1
                    self._challenge()
                    return
                if not self.ntlm.complete:
                    self._challenge(base64.b64encode(out or b"").decode())
                    return
                self.authenticated = True
            else:
                self._challenge()
                return
        encrypted = self.headers.get("Content-Type", "").startswith("multipart/encrypted")
        if encrypted:
            body = self._unwrap(body)
        elif self.ntlm is not None and not config.cert_pem and body:
            self._reply(400, b"unencrypted WinRM traffic over HTTP is refused")  # AllowUnencrypted=false
            return
        if not body:
            self._reply(200)
            return
        server.requests.append(body)
        if server.close_on_next_receive and b"/windows/shell/Receive<" in body:
            server.close_on_next_receive = False
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        host, port = self.server.server_address[:2]
        scheme_name = "https" if config.cert_pem else "http"
        status, reply = server.service.handle(
            body, f"{scheme_name}://{host}:{port}/wsman", self.client_address[0], config.max_envelope
        )
        server.responses.append(reply)
        if encrypted:
            self._reply(
                status,
                self._wrap(reply),
                {"Content-Type": f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'},
            )
        else:
            self._reply(status, reply, {"Content-Type": "application/soap+xml;charset=UTF-8"})

    def _unwrap(self, body: bytes) -> bytes:
        parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
        header, payload = parts[0], parts[1]
        expected = int(header.split(b"Length=")[1].strip())
        payload = payload.removesuffix(BOUNDARY + b"--\r\n")
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        (sig_len,) = struct.unpack("<i", payload[:4])
        data = self.ntlm.unwrap_winrm(payload[4 : 4 + sig_len], payload[4 + sig_len :])
        if len(data) != expected:
            raise ValueError("decrypted length differs from OriginalContent")
        return bytes(data)

    def _wrap(self, data: bytes) -> bytes:
        result = self.ntlm.wrap_winrm(data)
        stream = struct.pack("<i", len(result.header)) + result.header + result.data
        return (
            BOUNDARY + b"\r\n\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(data)).encode()
            + b"\r\n"
            + BOUNDARY
            + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + stream
            + BOUNDARY
            + b"--\r\n"
        )


class WinrmTestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: ServerConfig, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.config = config
        self.guest = EmulatedWindows(root, reboot=self.reboot, set_password=self.set_password)
        self.service = WsmanService(self.guest, config.username)
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []
        self.auth_failures = 0
        self.close_on_next_receive = False
        self.drop_connections = threading.Event()
        if config.cert_pem and config.key_pem:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert_file = root / "server-cert.pem"
            cert_file.parent.mkdir(parents=True, exist_ok=True)
            cert_file.write_text(config.cert_pem + config.key_pem)
            context.load_cert_chain(cert_file)
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def set_password(self, user: str, password: str) -> None:
        """The simulated Set-LocalUser: Basic and NTLM (NTLM_USER_FILE) accept only the new one."""
        if user != self.config.username:
            raise ValueError(f"no local user {user!r}")
        self.config.password = password
        user_file = os.environ.get("NTLM_USER_FILE")
        if user_file:
            write_user_file(Path(user_file), user, password)

    def reboot(self, down_for: float = 0.5) -> None:
        """Simulate a reboot: connections dropped for a while, shells gone, a new boot time."""
        self.drop_connections.set()
        self.service.reset()
        self.guest.rebooted()
        threading.Timer(down_for, self.drop_connections.clear).start()

    def __enter__(self) -> WinrmTestServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.service.reset()


def write_user_file(path: Path, username: str, password: str) -> None:
    """NTLM_USER_FILE for pyspnego's NTLM acceptor (DOMAIN:USER:PASSWORD, empty domain)."""
    path.write_text(f":{username}:{password}\n")
    os.chmod(path, 0o600)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
