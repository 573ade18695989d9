"""Run the ivshmem server beside a VM: start it before the domain, stop it after.

The server runs as ``vmforge channel server`` in its own session, logs to the VM's
``logs/ivshmem-server.log`` and records ``PID SOCKET`` in ``ivshmem-server.pid`` in the VM's state
folder.  A pidfile is trusted only if /proc/PID/cmdline is still that server (pids get reused).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vmforge.ivshmem.errors import ChannelError, ChannelTimeout
from vmforge.ivshmem.spawn import child_env
from vmforge.state import VmDir

PIDFILE = "ivshmem-server.pid"
LOGFILE = "ivshmem-server.log"
READY_MARK = "ivshmem server on "


@dataclass(frozen=True)
class ServerHandle:
    pid: int
    socket_path: Path


def running_server(vm: VmDir) -> ServerHandle | None:
    """The VM's server if it is still running (a stale pidfile is removed)."""
    pidfile = vm.root / PIDFILE
    try:
        pid_text, _, socket_text = pidfile.read_text(encoding="utf-8").strip().partition(" ")
        handle = ServerHandle(int(pid_text), Path(socket_text))
    except (FileNotFoundError, ValueError):
        return None
    if _is_our_server(handle):
        return handle
    pidfile.unlink(missing_ok=True)
    return None


def start_server(
    vm: VmDir,
    socket_path: Path,
    shm_path: Path,
    size: int,
    vectors: int,
    *,
    group: int | None = None,
    timeout: float = 20.0,
) -> ServerHandle:
    """Start the server (or return the one already serving this socket) once it listens.

    ``group``: the socket's group (QEMU's, so a QEMU running as another user can connect).  A
    socket file left by a server that died is replaced; a live server there is refused."""
    existing = running_server(vm)
    if existing is not None:
        if existing.socket_path == socket_path:
            return existing
        raise ChannelError(
            f"VM {vm.name!r} already has an ivshmem server on {existing.socket_path} (pid {existing.pid})",
            hint="stop it first",
        )
    vm.ensure()
    cmd = [
        sys.executable, "-m", "vmforge", "channel", "server",
        "--socket", str(socket_path), "--shm", str(shm_path), "--size", str(size), "--vectors", str(vectors),
    ]  # fmt: skip
    if group is not None:
        cmd += ["--group", str(group)]
    with (vm.logs / LOGFILE).open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            env=child_env(),
        )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().decode(errors="replace") if ready else ""
    finally:
        proc.stdout.close()
    if READY_MARK not in line:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
        problem = "exited" if proc.returncode not in (None, -signal.SIGKILL) else "did not start in time"
        error = ChannelError if problem == "exited" else ChannelTimeout
        raise error(
            f"the ivshmem server for {vm.name} {problem}",
            hint=f"see {vm.logs / LOGFILE}",
        )
    handle = ServerHandle(proc.pid, socket_path)
    (vm.root / PIDFILE).write_text(f"{proc.pid} {socket_path}\n", encoding="utf-8")
    return handle


def stop_server(vm: VmDir, *, timeout: float = 10.0) -> bool:
    """Stop the VM's server (SIGTERM, then SIGKILL after ``timeout``) and remove its socket;
    False if none ran."""
    handle = running_server(vm)
    if handle is None:
        return False
    os.kill(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(handle.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(handle.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(handle.pid, os.WNOHANG)  # reap it when it is our own child
    (vm.root / PIDFILE).unlink(missing_ok=True)
    _unlink_socket(handle.socket_path)  # a killed server leaves it behind
    return True


def _unlink_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()


def _is_our_server(handle: ServerHandle) -> bool:
    try:
        args = Path(f"/proc/{handle.pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    words = [a.decode(errors="replace") for a in args]
    return _alive(handle.pid) and "channel" in words and "server" in words and str(handle.socket_path) in words


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
