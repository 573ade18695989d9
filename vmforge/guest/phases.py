"""``VMFORGE-PHASE`` markers: the one place that writes and reads them.

A guest reports progress by printing one line on its serial port::

    VMFORGE-PHASE <phase> [key=value ...]

``<phase>`` is a lower-case token (``pe-start`` … ``postinstall-done`` for Windows installs,
``probe-*`` for the probe guest); values are single tokens without spaces (the emitter refuses
anything else).  The grammar is owned by the media issue; the emitter (:func:`format_phase`, and
the probe's ``vmforge-phase`` shell script, which prints the same shape) and the parser live in
this one module so the two can be reconciled in one place.

:class:`PhaseReader` turns a raw serial byte stream into timestamped :class:`PhaseEvent` s.  Serial
output is noisy: firmware draws with ANSI escapes and bare ``\\r``, the kernel interleaves its
messages, a console stream may cut a line anywhere, and a guest may reboot and start again.  The
reader only trusts complete lines, strips escapes, finds the marker anywhere in the line, bounds
its buffer, and counts boots (a phase in ``boot_phases`` seen after other events starts a new
boot).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

MARKER = "VMFORGE-PHASE"

# Phases of a Windows install, in order (the media issue owns the list; unknown phases still parse).
WINDOWS_PHASES = (
    "pe-start",
    "pe-drivers",
    "setup-start",
    "specialize",
    "oobe",
    "firstlogon",
    "postinstall-start",
    "postinstall-done",
)
# Phases the probe guest's init prints.
PROBE_PHASES = ("probe-init", "probe-modules", "probe-media", "probe-disk", "probe-ready", "probe-agent")
BOOT_PHASES = frozenset({"pe-start", "probe-init"})

_PHASE_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_KEY_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_VALUE_RE = re.compile(r"[^\s=]{1,512}")
_LINE_RE = re.compile(MARKER + r" +(?P<phase>\S+)(?P<rest>.*)")
# CSI sequences (ESC [ ... final byte), OSC (ESC ] ... BEL/ST), and two-byte escapes (ESC c, ESC 7…).
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MAX_LINE = 16 * 1024


@dataclass(frozen=True)
class PhaseEvent:
    phase: str
    fields: dict[str, str] = field(default_factory=dict)
    timestamp: float = 0.0  # the reader's clock when the line was complete
    boot: int = 0  # 0 for the first boot the reader saw, +1 per restart
    line: str = ""  # the cleaned line, for logs


def format_phase(phase: str, **fields: str) -> str:
    """The marker line (without newline); ValueError when a token breaks the grammar."""
    if not _PHASE_RE.fullmatch(phase):
        raise ValueError(f"phase {phase!r} is not a lower-case token")
    parts = [MARKER, phase]
    for key, value in fields.items():
        if not _KEY_RE.fullmatch(key) or not _VALUE_RE.fullmatch(value):
            raise ValueError(f"phase field {key}={value!r} must be key=value without spaces")
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _strip(raw: str) -> str:
    """Drop ANSI escapes and control characters except ``\\r``."""
    text = _ANSI_RE.sub("", raw)
    return "".join(ch for ch in text if ch in "\t\r" or ch >= " ")


def clean_line(raw: str) -> str:
    """The line as a terminal would show it: escapes gone, a bare ``\\r`` redraws the line."""
    segments = [s for s in _strip(raw).split("\r") if s.strip()]
    return segments[-1].strip() if segments else ""


def parse_line(raw: str) -> tuple[str, dict[str, str]] | None:
    """``(phase, fields)`` when the line carries a well-formed marker, else None.

    The marker may follow other text on the line (interleaved kernel messages) and may be
    overdrawn after a ``\\r``; the last redraw segment holding a marker wins.
    """
    for segment in reversed(_strip(raw).split("\r")):
        match = _LINE_RE.search(segment)
        if match is not None:
            return _parse_match(match)
    return None


def _parse_match(match: re.Match[str]) -> tuple[str, dict[str, str]] | None:
    phase = match.group("phase")
    if not _PHASE_RE.fullmatch(phase):
        return None
    fields: dict[str, str] = {}
    for token in match.group("rest").split():
        key, sep, value = token.partition("=")
        if not sep or not _KEY_RE.fullmatch(key) or not _VALUE_RE.fullmatch(value):
            return None  # a torn or garbled marker is ignored, never half-read
        fields[key] = value
    return phase, fields


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
        parsed = parse_line(raw.decode("utf-8", errors="replace"))
        if parsed is None:
            return None
        phase, fields = parsed
        if phase in self._boot_phases and self._seen_any:
            self._boot += 1
        self._seen_any = True
        event = PhaseEvent(phase, fields, self._clock(), self._boot, clean_line(raw.decode("utf-8", "replace")))
        self.events.append(event)
        return event


def read_phases(chunks: Iterable[bytes], reader: PhaseReader | None = None) -> Iterator[PhaseEvent]:
    """Events from an iterable of byte chunks (a log file read in pieces, a console stream)."""
    reader = reader or PhaseReader()
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.close()
