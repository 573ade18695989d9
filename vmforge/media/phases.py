"""Progress markers: the one grammar for what a Windows install reports on its serial port.

A marker is one ASCII line::

    VMFORGE-PHASE <name> [key=value ...]

``name`` is lower-case letters, digits and ``-``; ``key`` is lower-case letters, digits and
``_``; a ``value`` is a run of printable ASCII without spaces or quotes, or a double-quoted
string of printable ASCII without ``"``.  Lines end in LF or CRLF.  Readers look for the marker
anywhere on a line (firmware and Setup write other text to the same port) and ignore every
line that is not a well-formed marker.

Writers: RunSynchronous in windowsPE (``pe-start``) and specialize (``specialize``), the
first-logon command (``firstlogon``), and the bootstrap script (``postinstall-start``,
``postinstall-done``, ``postinstall-failed reason=...``).  Later issues may add phases; readers
accept any well-formed name and :data:`KNOWN_PHASES` gives the order of the known ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

MARKER = "VMFORGE-PHASE"
SERIAL_PORT = "COM1"
MAX_LINE = 4096

PE_START = "pe-start"
SPECIALIZE = "specialize"
FIRSTLOGON = "firstlogon"
POSTINSTALL_START = "postinstall-start"
POSTINSTALL_DONE = "postinstall-done"
POSTINSTALL_FAILED = "postinstall-failed"

KNOWN_PHASES = (PE_START, SPECIALIZE, FIRSTLOGON, POSTINSTALL_START, POSTINSTALL_DONE, POSTINSTALL_FAILED)
TERMINAL_PHASES = frozenset({POSTINSTALL_DONE, POSTINSTALL_FAILED})

_NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_KEY = r"[a-z][a-z0-9_]*"
_BARE = r"[!#-~]+"  # printable ASCII without space and '"'
_QUOTED = r'"[ !#-~]*"'
_FIELD_RE = re.compile(rf"({_KEY})=({_QUOTED}|{_BARE})")
_LINE_RE = re.compile(rf"{MARKER} ({_NAME})((?: {_KEY}=(?:{_QUOTED}|{_BARE}))*) *$")
_NAME_RE = re.compile(rf"^{_NAME}$")
_KEY_RE = re.compile(rf"^{_KEY}$")


@dataclass(frozen=True)
class PhaseMarker:
    name: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.name in KNOWN_PHASES

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_PHASES


def format_marker(name: str, **fields: str) -> str:
    """The marker line (without line end) for ``name`` and ``fields``; quotes values with spaces."""
    if not _NAME_RE.match(name):
        raise ValueError(f"phase name {name!r} does not match {_NAME}")
    parts = [MARKER, name]
    for key, value in fields.items():
        if not _KEY_RE.match(key):
            raise ValueError(f"phase field {key!r} does not match {_KEY}")
        if not value or not all(" " <= c <= "~" for c in value) or '"' in value:
            raise ValueError(f"phase field {key}={value!r}: values are printable ASCII without '\"'")
        parts.append(f'{key}="{value}"' if " " in value else f"{key}={value}")
    return " ".join(parts)


def parse_line(line: str | bytes) -> PhaseMarker | None:
    """The marker on ``line``, or None when the line carries none (or a malformed one)."""
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    line = line.rstrip("\r\n")
    start = line.find(MARKER + " ")
    if start < 0:
        return None
    match = _LINE_RE.match(line, start)
    if not match:
        return None
    fields = {key: value.strip('"') for key, value in _FIELD_RE.findall(match.group(2))}
    return PhaseMarker(match.group(1), fields)


class PhaseReader:
    """Incremental reader for a byte stream (a serial log that grows): feed bytes, get markers."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[PhaseMarker]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_LINE:  # a runaway line without LF is not a marker
            self._pending = b""
        return [m for m in (parse_line(raw) for raw in lines) if m is not None]


def parse_stream(text: str | bytes) -> Iterator[PhaseMarker]:
    """Every marker in a complete log (a last line without LF counts too)."""
    reader = PhaseReader()
    yield from reader.feed(text if isinstance(text, bytes) else text.encode("ascii", errors="replace"))
    if reader._pending:
        marker = parse_line(reader._pending)
        if marker is not None:
            yield marker


def cmd_marker_command(name: str, **fields: str) -> str:
    """A Windows command line that writes the marker to COM1 (cmd's leading redirection keeps a
    trailing digit in the marker from being read as a stream number)."""
    return f"cmd.exe /c >{SERIAL_PORT} echo {format_marker(name, **fields)}"
