"""``VMFORGE-PHASE`` progress markers: the one grammar, its writers' helper and the one reader.

A guest reports progress by printing one ASCII line on its serial port::

    VMFORGE-PHASE <name> [key=value ...]

- ``name``: a lower-case letter, then lower-case letters, digits and ``-`` (at most 64 chars);
- ``key``: a lower-case letter, then lower-case letters, digits and ``_`` (at most 64 chars);
- ``value``: 1-512 printable ASCII characters without ``"``; a value holding a space is written
  double-quoted (``reason="disk full"``), any other value bare.

Writers, all checked against this module's parser by tests:

- :func:`format_marker` (Python), used by the answer file (:func:`cmd_marker_command`: WinPE
  ``pe-start``, ``specialize``, ``firstlogon``) and the bootstrap script's parameters
  (``postinstall-start``, ``postinstall-done``, ``postinstall-failed reason=...``);
- the probe's shell emitter ``templates/probe/vmforge-phase`` (``probe-*`` phases), which
  refuses the same inputs and prints the same bytes (tests/unit/test_phase_emitters.py runs both).

Serial output is noisy: firmware draws with ANSI escapes and bare ``\\r``, the kernel interleaves
its messages, a console stream cuts lines anywhere, a guest reboots and starts again.  The
:class:`PhaseReader` trusts complete lines only, strips escapes, finds the marker anywhere on a
line, ignores a torn or malformed marker (never half-reads it), bounds its buffer, stamps each
event with its clock and counts boots (a phase in ``BOOT_PHASES`` seen after other events starts
a new boot).  Readers accept any well-formed name; the tuples below give the known orders.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

MARKER = "VMFORGE-PHASE"
SERIAL_PORT = "COM1"
MAX_LINE = 16 * 1024

PE_START = "pe-start"
SPECIALIZE = "specialize"
FIRSTLOGON = "firstlogon"
POSTINSTALL_START = "postinstall-start"
POSTINSTALL_DONE = "postinstall-done"
POSTINSTALL_FAILED = "postinstall-failed"

# What a Windows install writes, in order (answer file, then the bootstrap script).
WINDOWS_PHASES = (PE_START, SPECIALIZE, FIRSTLOGON, POSTINSTALL_START, POSTINSTALL_DONE, POSTINSTALL_FAILED)
# What the probe guest writes (templates/probe/probe-init and run-agent), in order.
PROBE_PHASES = ("probe-init", "probe-modules", "probe-media", "probe-disk", "probe-ready", "probe-agent")
KNOWN_PHASES = WINDOWS_PHASES + PROBE_PHASES
TERMINAL_PHASES = frozenset({POSTINSTALL_DONE, POSTINSTALL_FAILED})
BOOT_PHASES = frozenset({PE_START, "probe-init"})

_NAME = r"[a-z][a-z0-9-]{0,63}"
_KEY = r"[a-z][a-z0-9_]{0,63}"
_BARE = r"[!#-~]{1,512}"  # printable ASCII without space and '"'
_QUOTED = r'"[ !#-~]{1,512}"'
_NAME_RE = re.compile(_NAME)
_KEY_RE = re.compile(_KEY)
_FIELD_RE = re.compile(rf"({_KEY})=({_QUOTED}|{_BARE})")
_MARKER_RE = re.compile(rf"{MARKER} ({_NAME})((?: {_KEY}=(?:{_QUOTED}|{_BARE}))*) *$")
# CSI sequences (ESC [ ... final byte), OSC (ESC ] ... BEL/ST), and two-byte escapes (ESC c, ESC 7…).
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass(frozen=True)
class PhaseMarker:
    """A parsed marker line."""

    name: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.name in KNOWN_PHASES

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_PHASES


@dataclass(frozen=True)
class PhaseEvent:
    """A marker as the reader saw it in a stream."""

    phase: str
    fields: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = 0.0  # the reader's clock when the line was complete
    boot: int = 0  # 0 for the first boot the reader saw, +1 per restart
    line: str = ""  # the cleaned line, for logs

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


def format_marker(name: str, **fields: str) -> str:
    """The marker line (without line end); ValueError when a part breaks the grammar."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"phase name {name!r} does not match {_NAME}")
    parts = [MARKER, name]
    for key, value in fields.items():
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"phase field {key!r} does not match {_KEY}")
        if not 0 < len(value) <= 512 or not all(" " <= c <= "~" for c in value) or '"' in value:
            raise ValueError(f"phase field {key}={value!r}: values are 1-512 printable ASCII characters without '\"'")
        parts.append(f'{key}="{value}"' if " " in value else f"{key}={value}")
    return " ".join(parts)


def cmd_marker_command(name: str, **fields: str) -> str:
    """A Windows command line that writes the marker to COM1 (cmd's leading redirection keeps a
    trailing digit in the marker from being read as a stream number)."""
    return f"cmd.exe /c >{SERIAL_PORT} echo {format_marker(name, **fields)}"


def _strip(raw: str) -> str:
    """Drop ANSI escapes and control characters except ``\\t`` and ``\\r``."""
    text = _ANSI_RE.sub("", raw)
    return "".join(ch for ch in text if ch in "\t\r" or ch >= " ")


def clean_line(raw: str) -> str:
    """The line as a terminal would show it: escapes gone, a bare ``\\r`` redraws the line."""
    segments = [s for s in _strip(raw).split("\r") if s.strip()]
    return segments[-1].strip() if segments else ""


def parse_line(raw: str | bytes) -> PhaseMarker | None:
    """The marker on the line, or None when it carries none (or a malformed one).

    The marker may follow other text (interleaved kernel messages) and may be overdrawn after a
    ``\\r``; the last redraw segment holding a marker wins.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    for segment in reversed(_strip(raw.rstrip("\r\n")).split("\r")):
        start = segment.find(MARKER + " ")
        if start < 0:
            continue
        match = _MARKER_RE.match(segment.rstrip(), start)
        if match is None:
            return None  # a torn or garbled marker is ignored, never half-read
        fields = {key: value.strip('"') for key, value in _FIELD_RE.findall(match.group(2))}
        return PhaseMarker(match.group(1), fields)
    return None


class PhaseReader:
    """Feed it serial bytes as they arrive; it returns the phase events completed by each chunk."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        boot_phases: Iterable[str] = BOOT_PHASES,
        max_line: int = MAX_LINE,
    ) -> None:
        self._clock = clock
        self._boot_phases = frozenset(boot_phases)
        self._max_line = max_line
        self._buffer = bytearray()
        self._boot = 0
        self._seen_any = False
        self.events: list[PhaseEvent] = []

    @property
    def boot(self) -> int:
        return self._boot

    def feed(self, data: bytes) -> list[PhaseEvent]:
        self._buffer.extend(data)
        new: list[PhaseEvent] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            raw = bytes(self._buffer[:cut])
            del self._buffer[: cut + 1]
            event = self._line(raw)
            if event is not None:
                new.append(event)
        if len(self._buffer) > self._max_line:
            # Endless noise without a newline (a firmware progress bar): keep only the tail, which
            # may be the start of a marker line.
            del self._buffer[: len(self._buffer) - self._max_line]
        return new

    def close(self) -> list[PhaseEvent]:
        """End of stream: a final line without newline still counts."""
        raw = bytes(self._buffer)
        self._buffer.clear()
        event = self._line(raw) if raw else None
        return [event] if event is not None else []

    def _line(self, raw: bytes) -> PhaseEvent | None:
        text = raw.decode("utf-8", errors="replace")
        marker = parse_line(text)
        if marker is None:
            return None
        if marker.name in self._boot_phases and self._seen_any:
            self._boot += 1
        self._seen_any = True
        event = PhaseEvent(marker.name, marker.fields, self._clock(), self._boot, clean_line(text))
        self.events.append(event)
        return event


def read_phases(chunks: Iterable[bytes], reader: PhaseReader | None = None) -> Iterator[PhaseEvent]:
    """Events from an iterable of byte chunks (a log file read in pieces, a console stream)."""
    reader = reader or PhaseReader()
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.close()


def parse_stream(text: str | bytes) -> list[PhaseEvent]:
    """Every marker in a complete log (a last line without LF counts too)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", errors="replace")
    return list(read_phases([data]))
