"""A *simulated* installed Windows for driving 'vmforge create' past Setup (no Windows runs here).

- :class:`RecordedSerial`: the serial stream of an install - OVMF's real output recorded in
  tests/data/create/ovmf-serial.bin with Windows' phase markers spliced in as cmd's ``echo``
  writes them - appended to a log file chunk by chunk as the pipeline polls it (the pipeline's
  own ``LogFileSource`` reads the file).  When the WinPE stream has been written, Setup's reboot
  happens the way the install shape makes it happen: ``on_reboot = destroy`` stops the domain
  (the test destroys the real libvirt domain).
- :class:`CreateGuest`: the WinRM test server's emulated Windows (tests/winrm_server) taught the
  few more commands create sends after ``postinstall-done``: the guard scripts (answered by
  :class:`tests.guards_sim.SimWindows`), the packages' guest-facts script, a Windows app's
  install/verify commands (recognised by shape), and ``cmd.exe /c ver``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.guards_sim import SimWindows
from tests.winrm_server.emulation import EmulatedWindows, Process
from tests.winrm_server.server import ServerConfig, WinrmTestServer
from vmforge.create.watch import LogFileSource, PhaseSource
from vmforge.media.phases import PhaseEvent, format_marker
from vmforge.plan import Plan

REPO = Path(__file__).resolve().parents[1]
OVMF = (REPO / "tests" / "data" / "create" / "ovmf-serial.bin").read_bytes()
CD_PROMPT = b"\r\nPress any key to boot from CD or DVD......"
FACTS_FIRST_LINE = (REPO / "templates/guest/windows/packages/guest-facts.ps1").read_text().splitlines()[0]
VER = b"\r\nMicrosoft Windows [Version 10.0.22631.4460]\r\n"  # what 'ver' prints (simulated)


def marker(name: str, **fields: str) -> bytes:
    return format_marker(name, **fields).encode() + b" \r\n"  # cmd's echo keeps the space before >COM1


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


WINPE = OVMF + CD_PROMPT + b"\x1b[2J" + marker("pe-start", build="22631") + b"\x1b[0m" * 40
SECOND_BOOT = OVMF[:3000] + marker("specialize") + marker("firstlogon") + marker("postinstall-start")


class _Feeding:
    """A LogFileSource on ``path`` whose guest writes one more chunk before each poll."""

    def __init__(self, path: Path, pending: list[bytes], at_end: Callable[[], None] | None) -> None:
        self.inner = LogFileSource(path)
        self.path = path
        self.pending = pending
        self.at_end = at_end

    def poll(self) -> list[PhaseEvent]:
        if self.pending:
            with self.path.open("ab") as handle:
                handle.write(self.pending.pop(0))
        elif self.at_end is not None:
            at_end, self.at_end = self.at_end, None
            at_end()
        return self.inner.poll()


class RecordedSerial:
    """What each phase-following step of create reads: ``streams[step]`` is written as the step
    polls; ``reboots[step]`` runs once it is all written (Setup's reboot)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")
        self.streams: dict[str, list[bytes]] = {}
        self.reboots: dict[str, Callable[[], None]] = {}
        self.sources: list[str] = []

    def source(self, step: str, plan: Plan) -> PhaseSource:
        self.sources.append(step)
        return _Feeding(self.path, self.streams.pop(step, []), self.reboots.pop(step, None))


class CreateGuest(EmulatedWindows):
    def __init__(self, root: Path, sim: SimWindows, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.sim = sim
        self.edition_id = "Professional"
        self.build = 22631

    def start(self, command_line: str, *, skip_cmd_shell: bool = False) -> Process:
        if command_line == "cmd.exe /c ver":
            self.commands_seen.append(command_line)
            process = Process()
            process.write("stdout", VER)
            process.finish(0)
            return process
        return super().start(command_line, skip_cmd_shell=skip_cmd_shell)

    def _vmforge_script(self, script: str, process: Process) -> int:
        guard = re.search(r"^\$Guard = '([^']+)'$", script, re.M)
        mode = re.search(r"^\$Mode = '([^']+)'$", script, re.M)
        if guard and mode:
            process.write("stdout", json.dumps(self.sim.answer(guard.group(1), mode.group(1))).encode())
            return 0
        if script.splitlines()[:1] == [FACTS_FIRST_LINE]:
            facts = {"edition_id": self.edition_id, "build": self.build, "arch": "AMD64"}
            process.write("stdout", json.dumps(facts, separators=(",", ":")).encode())
            return 0
        app = self._app_command(script.strip())
        if app is not None:
            return app(process)
        return super()._vmforge_script(script, process)

    # A Windows app's commands, by shape (see tests/integration/media/test_create_windows_simulated.py).
    def _app_command(self, line: str) -> Callable[[Process], int] | None:
        made = re.fullmatch(r"New-Item -ItemType Directory -Force -Path '([^']+)' \| Out-Null", line)
        if made:
            return lambda _p: self._mkdir(made.group(1))
        copied = re.fullmatch(
            r"Copy-Item -LiteralPath \(Join-Path '([^']+)' '([^']+)'\) -Destination '([^']+)' -Force", line
        )
        if copied:
            source = self.host_path(copied.group(1) + "\\" + copied.group(2))
            return lambda p: self._copy(p, source, copied.group(3))
        hashed = re.fullmatch(
            r"if \(\(Get-FileHash -LiteralPath '([^']+)'\)\.Hash -ne '([0-9A-Fa-f]{64})'\) \{ exit 1 \}", line
        )
        if hashed:
            return lambda _p: self._hash_is(hashed.group(1), hashed.group(2))
        return None

    def _mkdir(self, guest_path: str) -> int:
        self.host_path(guest_path).mkdir(parents=True, exist_ok=True)
        return 0

    def _copy(self, process: Process, source: Path, destination: str) -> int:
        target = self.host_path(destination)
        if not source.is_file() or not target.parent.is_dir():
            process.write("stderr", f"Copy-Item : Cannot find path '{destination}'.".encode())
            return 1
        target.write_bytes(source.read_bytes())
        return 0

    def _hash_is(self, guest_path: str, sha256: str) -> int:
        path = self.host_path(guest_path)
        return 0 if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256.lower() else 1


class CreateGuestServer(WinrmTestServer):
    """The WinRM test server with :class:`CreateGuest` behind it."""

    def __init__(self, config: ServerConfig, root: Path, sim: SimWindows) -> None:
        super().__init__(config, root)
        self.guest = CreateGuest(root, sim, reboot=self.reboot, set_password=self.set_password)
        self.service.guest = self.guest


def write_windows_app(folder: Path, payload: bytes = b"MZ simulated app v1\r\n") -> Path:
    """A Windows app package whose commands :class:`CreateGuest` understands."""
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    (folder / "bin" / "simapp.exe").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    target = "C:\\\\Program Files\\\\SimApp"  # as a TOML basic string
    (folder / "package.toml").write_text(
        f"""name = "simapp"
kind = "app"
version = "1"
os = ["windows"]

[app]
install = [
    "New-Item -ItemType Directory -Force -Path '{target}' | Out-Null",
    "Copy-Item -LiteralPath (Join-Path {{stage}} 'bin\\\\simapp.exe') -Destination '{target}\\\\simapp.exe' -Force",
]
verify = ["if ((Get-FileHash -LiteralPath '{target}\\\\simapp.exe').Hash -ne '{digest.upper()}') {{ exit 1 }}"]

[[files]]
path = "bin/simapp.exe"
sha256 = "{digest}"
"""
    )
    return folder
