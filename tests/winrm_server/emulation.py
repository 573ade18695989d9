"""The *simulated* Windows behind the test WS-Management server.

Nothing here runs PowerShell.  Commands are recognised by shape:

- vmforge's own guest scripts (``powershell.exe … -EncodedCommand`` or ``-File``) are identified
  by their first line (``# vmforge: …``) in templates/guest/windows/ and emulated in Python:
  file hashes, uploads (stdin base64 lines reassembled into a real file, so hash checks are real),
  downloads, directories, boot identity (LastBootUpTime), OS info, reboot;
- any other PowerShell script fails the way PowerShell does, with a CLIXML error record on stderr;
- the command lines in the recorded transcripts get the canned answers the real host gave;
- ``sh -c …`` runs a real ``sh`` (for stdin, big output, exit codes, long runs);
- anything else fails like cmd.exe ("is not recognized as an internal or external command").

Guest paths ``C:\\x\\y`` map to ``<root>/C/x/y``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "templates" / "guest" / "windows"


class Fault(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def split_command_line(line: str) -> list[str]:
    """CommandLineToArgvW's rules (quotes, backslashes before quotes)."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = have_arg = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have_arg = True
                continue
            current.append("\\" * count)
            i = j
            have_arg = True
            continue
        if char == '"':
            in_quotes = not in_quotes
            have_arg = True
        elif char in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(current))
                current, have_arg = [], False
        else:
            current.append(char)
            have_arg = True
        i += 1
    if have_arg:
        args.append("".join(current))
    return args


def clixml_error(message: str) -> bytes:
    escaped = message.replace("\r", "_x000D_").replace("\n", "_x000A_")
    return (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f'<S S="Error">{escaped}_x000D__x000A_</S></Objs>'
    ).encode()


class Process:
    """One running command: buffered output, stdin as it arrives, an exit code when done."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdin = bytearray()
        self.stdin_closed = False
        self.done = False
        self.exit_code = 0
        self.on_stdin: Callable[[bytes, bool], None] | None = None

    def write(self, name: str, data: bytes) -> None:
        with self.cond:
            (self.stdout if name == "stdout" else self.stderr).extend(data)
            self.cond.notify_all()

    def finish(self, code: int) -> None:
        with self.cond:
            self.exit_code = code
            self.done = True
            self.cond.notify_all()

    def feed(self, data: bytes, end: bool) -> None:
        with self.cond:
            self.stdin.extend(data)
            self.stdin_closed = self.stdin_closed or end
            self.cond.notify_all()
        if self.on_stdin is not None:
            self.on_stdin(data, end)

    def read_stdin_all(self) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: self.stdin_closed)
            return bytes(self.stdin)

    def take(self, limit: int, timeout: float) -> tuple[list[tuple[str, bytes]], bool]:
        """Output produced so far (waiting up to ``timeout`` for some), and whether it is done."""
        with self.cond:
            self.cond.wait_for(lambda: self.done or self.stdout or self.stderr, timeout=timeout)
            streams: list[tuple[str, bytes]] = []
            for name, buffer in (("stdout", self.stdout), ("stderr", self.stderr)):
                while buffer and limit > 0:
                    piece = bytes(buffer[: min(limit, 16384)])
                    del buffer[: len(piece)]
                    limit -= len(piece)
                    streams.append((name, piece))
            return streams, self.done and not self.stdout and not self.stderr

    def terminate(self) -> None:
        self.finish(self.exit_code if self.done else 1)


class EmulatedWindows:
    def __init__(
        self,
        root: Path,
        *,
        reboot: Callable[[], None] | None = None,
        set_password: Callable[[str, str], None] | None = None,
        reboot_delay: float = 0.3,
    ) -> None:
        self.root = root
        self._set_password = set_password
        self.boot_time = dt.datetime(2026, 1, 1, 8, 0, 0, tzinfo=dt.UTC)
        self.boots = 1
        self._reboot = reboot
        self.reboot_delay = reboot_delay
        self.script_names = {
            path.read_text(encoding="utf-8").splitlines()[0]: path.stem for path in SCRIPTS.glob("*.ps1")
        }
        self.commands_seen: list[str] = []

    # -- state ------------------------------------------------------------------------------------
    def host_path(self, guest_path: str) -> Path:
        drive, _, rest = guest_path.partition(":")
        parts = [p for p in re.split(r"[\\/]+", rest) if p]
        return self.root.joinpath(drive.upper(), *parts)

    def rebooted(self) -> None:
        self.boots += 1
        self.boot_time += dt.timedelta(minutes=5)

    # -- commands ---------------------------------------------------------------------------------
    def start(self, command_line: str, *, skip_cmd_shell: bool = False) -> Process:
        self.commands_seen.append(command_line)
        argv = split_command_line(command_line)
        process = Process()
        canned = TRANSCRIPT_COMMANDS.get(command_line)
        if canned is not None:
            canned(process)
            return process
        program = argv[0].lower() if argv else ""
        if skip_cmd_shell and "\\" not in program:
            raise Fault("file_not_found")  # CreateProcess without cmd.exe needs a full path (recorded)
        if program.endswith("powershell.exe"):
            self._powershell(argv[1:], process)
        elif program == "sh":
            self._sh(argv[1:], process)
        else:
            name = argv[0] if argv else ""
            process.write(
                "stderr",
                f"'{name}' is not recognized as an internal or external command,\r\n".encode()
                + b"operable program or batch file.\r\n",
            )
            process.finish(1)
        return process

    def _powershell(self, args: list[str], process: Process) -> None:
        lowered = [a.lower() for a in args]
        if "-encodedcommand" in lowered:
            script = base64.b64decode(args[lowered.index("-encodedcommand") + 1]).decode("utf-16-le")
        elif "-file" in lowered:
            path = self.host_path(args[lowered.index("-file") + 1])
            if not path.is_file():
                process.write(
                    "stderr", clixml_error(f"The argument '{path.name}' to the -File parameter does not exist.")
                )
                process.finish(-196608)
                return
            script = path.read_bytes().decode("utf-8-sig")
        else:
            process.write("stderr", clixml_error("vmforge's test server runs only vmforge scripts"))
            process.finish(1)
            return
        self._run_thread(process, lambda: self._vmforge_script(script, process))

    def _run_thread(self, process: Process, body: Callable[[], int]) -> None:
        def target() -> None:
            try:
                code = body()
            except Exception as exc:
                process.write("stderr", clixml_error(f"{exc.__class__.__name__}: {exc}"))
                code = 1
            process.finish(code)

        threading.Thread(target=target, daemon=True).start()

    def _vmforge_script(self, script: str, process: Process) -> int:
        first = script.splitlines()[0] if script else ""
        name = self.script_names.get(first)
        literal = re.search(r"^\$Path = '((?:[^']|'')*)'$", script, re.M)
        path = self.host_path(literal.group(1).replace("''", "'")) if literal else None
        if name is None:
            word = script.strip().split()[0] if script.strip() else ""
            process.write(
                "stderr",
                clixml_error(
                    f"{word} : The term '{word}' is not recognized as the name of a cmdlet, function, script "
                    "file, or operable program."
                ),
            )
            return 1
        if name == "file-hash":
            assert path is not None
            if not path.is_file():
                process.write(
                    "stderr",
                    clixml_error(
                        f"Get-FileHash : Cannot find path '{literal and literal.group(1)}' because it does not exist."
                    ),
                )
                return 1
            process.write("stdout", hashlib.sha256(path.read_bytes()).hexdigest().encode())
            return 0
        if name == "boot-identity":
            process.write("stdout", self.boot_time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z").encode())
            return 0
        if name == "make-directory":
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            return 0
        if name == "os-info":
            info = {
                "id": "mswindows",
                "name": "Microsoft Windows 11 Pro (simulated)",
                "version": "10.0.22631",
                "kernel_release": "22631",
                "machine": "AMD64",
            }
            process.write("stdout", json.dumps(info, separators=(",", ":")).encode())
            return 0
        if name == "receive-file":
            assert path is not None
            data = process.read_stdin_all()
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".vmforge-part")
            with partial.open("wb") as sink:
                for line in data.split(b"\n"):
                    if line.strip():
                        sink.write(base64.b64decode(line.strip(), validate=True))
            partial.replace(path)
            process.write("stdout", hashlib.sha256(path.read_bytes()).hexdigest().encode())
            return 0
        if name == "send-file":
            assert path is not None
            size = int(re.search(r"\[byte\[\]\]::new\((\d+)\)", script).group(1))  # type: ignore[union-attr]
            if not path.is_file():
                process.write(
                    "stderr",
                    clixml_error(
                        f'Exception calling "OpenRead": "Could not find file \'{literal and literal.group(1)}\'."'
                    ),
                )
                return 1
            digest = hashlib.sha256()
            with path.open("rb") as source:
                while block := source.read(size):
                    digest.update(block)
                    process.write("stdout", base64.b64encode(block) + b"\n")
            process.write("stdout", f"sha256:{digest.hexdigest()}".encode())
            return 0
        if name == "set-password":
            user = re.search(r"^\$User = '((?:[^']|'')*)'$", script, re.M)
            line = process.read_stdin_all().split(b"\n")[0].strip().decode()
            if user is None or not line or self._set_password is None:
                process.write("stderr", clixml_error("Set-LocalUser : no password on stdin"))
                return 1
            self._set_password(user.group(1).replace("''", "'"), line)
            return 0
        if name == "remove-answer-copies":
            for relative in ("Panther\\unattend.xml", "Panther\\Unattend\\unattend.xml"):
                copy = self.host_path("C:\\Windows\\" + relative)
                if copy.is_file():
                    copy.unlink()
                    process.write("stdout", f"removed C:\\Windows\\{relative}\r\n".encode())
            return 0
        if name in ("reboot", "shutdown"):
            if self._reboot is not None:
                threading.Timer(self.reboot_delay, self._reboot).start()
            return 0
        process.write("stderr", clixml_error(f"the test server does not emulate {name}.ps1"))
        return 1

    def _sh(self, args: list[str], process: Process) -> None:
        proc = subprocess.Popen(["sh", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin and proc.stdout and proc.stderr

        def pump(name: str, stream: object) -> None:
            while block := stream.read1(65536):  # type: ignore[attr-defined]
                process.write(name, block)

        def stdin(data: bytes, end: bool) -> None:
            assert proc.stdin
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                if end:
                    proc.stdin.close()
            except BrokenPipeError:
                pass

        process.on_stdin = stdin
        readers = [
            threading.Thread(target=pump, args=(n, s), daemon=True)
            for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        for reader in readers:
            reader.start()

        def wait() -> None:
            code = proc.wait()
            for reader in readers:
                reader.join()
            process.finish(code)

        threading.Thread(target=wait, daemon=True).start()
        original = process.terminate

        def terminate() -> None:
            if proc.poll() is None:
                proc.kill()
            original()

        process.terminate = terminate  # type: ignore[method-assign]


def _canned(
    out: list[tuple[str, bytes]], code: int, delay: float = 0.0, stdin: bool = False
) -> Callable[[Process], None]:
    def start(process: Process) -> None:
        def run() -> None:
            if stdin:
                process.read_stdin_all()
            for i, (name, data) in enumerate(out):
                if delay and i:
                    threading.Event().wait(delay)
                if i < len(out) - 1:
                    process.write(name, data)
                    continue
                with process.cond:  # the last output and the exit arrive together, as recorded
                    process.write(name, data)
                    process.finish(code)
            if not out:
                process.finish(code)

        threading.Thread(target=run, daemon=True).start()

    return start


#: What the real host answered to the transcripts' command lines (pywinrm/pypsrp joined the
#: arguments with spaces).  The operation-timeout transcript's command sleeps 30 s between lines.
TRANSCRIPT_COMMANDS: dict[str, Callable[[Process], None]] = {
    "cmd.exe /c echo hi": _canned([("stdout", b"hi\r\n")], 0),
    "cmd.exe /c echo out && echo err>&2 && exit 1": _canned([("stdout", b"out \r\n"), ("stderr", b"err \r\n")], 1),
    "powershell.exe -": _canned([("stdout", b"output 1\noutput 2\n")], 0, stdin=True),
    "powershell.exe Write-Host こんにちは": _canned([("stdout", "こんにちは\n".encode())], 0),
    "powershell.exe Write-Host hi; Start-Sleep 30; Write-Host hi again": _canned(
        [("stdout", b"hi\n"), ("stdout", b"hi again\n")], 0, delay=2.5
    ),
    "C:\\Windows\\system32\\WindowsPowerShell\\v1.0\\powershell.exe Write-Host hi": _canned([("stdout", b"hi\n")], 0),
}
