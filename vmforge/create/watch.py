"""Following a guest's phase markers until what a step waits for happens, with deadlines.

The decisions live here, apart from libvirt, so recorded serial streams can drive them:

- a wanted phase shows up -> done;
- a failure phase (``postinstall-failed``) -> :class:`StepFailed` with the guest's reason;
- the domain stops: with ``stop_ends_wait`` (Windows' install shape, ``on_reboot = destroy``)
  after at least one marker that is Setup's reboot -> done; otherwise -> :class:`StepFailed`;
- no marker at all before ``first_sign`` (``[timeouts] boot``) or the wanted phase not before
  ``deadline`` -> :class:`StepTimeout` naming the last phase seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vmforge.errors import VmforgeError
from vmforge.guest.console import ConsoleFollower, follow_log_file
from vmforge.media.phases import POSTINSTALL_FAILED, PhaseEvent, PhaseReader

# Typical time from a phase to the next one (seconds, Windows 11 under KVM on an SSD), shown
# beside the elapsed time so a slow phase is told apart from a stuck one.
TYPICAL = {
    "pe-start": 420,
    "specialize": 120,
    "oobe": 90,
    "firstlogon": 60,
    "postinstall-start": 180,
    "probe-init": 5,
    "probe-modules": 5,
    "probe-media": 5,
    "probe-disk": 5,
}
PROGRESS_EVERY = 30.0


class StepFailed(VmforgeError):
    """A step's wait ended in a way that means the guest failed."""


class StepTimeout(StepFailed):
    """A step's wait ran out of time."""


class PhaseSource(Protocol):
    def poll(self) -> list[PhaseEvent]:
        """Events completed since the last poll."""


class LogFileSource:
    """A serial log file on this host (libvirt appends to it across boots, so a re-run reading
    it from the start sees every marker of earlier runs too)."""

    def __init__(self, path: Path, reader: PhaseReader | None = None) -> None:
        self.path = path
        self.reader = reader or PhaseReader()
        self._offset = 0
        self._seen = 0

    def poll(self) -> list[PhaseEvent]:
        self._offset = follow_log_file(self.path, self.reader, self._offset)
        new = self.reader.events[self._seen :]
        self._seen = len(self.reader.events)
        return list(new)


class ConsoleSource:
    """The console stream (remote hosts, where the log file is not readable)."""

    def __init__(self, follower: ConsoleFollower) -> None:
        self.follower = follower
        self._seen = 0

    def poll(self) -> list[PhaseEvent]:
        events = list(self.follower.reader.events)
        new = events[self._seen :]
        self._seen = len(events)
        return new


@dataclass
class Outcome:
    kind: str  # "phase" (a wanted phase arrived) or "stopped" (Setup's reboot)
    event: PhaseEvent | None = None
    stop_reason: str | None = None
    seen: list[PhaseEvent] = field(default_factory=list)


@dataclass
class Wait:
    """What one step waits for; ``describe`` names it in messages ("Windows Setup's reboot")."""

    describe: str
    wanted: Collection[str] = ()
    stop_ends_wait: bool = False
    failure_phases: Collection[str] = (POSTINSTALL_FAILED,)


def _phase_text(event: PhaseEvent) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
    return f"{event.phase} {fields}".strip()


def follow(
    source: PhaseSource,
    wait: Wait,
    domain_running: Callable[[], tuple[bool, str]],
    deadline: float,
    first_sign: float,
    *,
    already_seen: list[PhaseEvent] | None = None,
    on_event: Callable[[PhaseEvent], None] = lambda _e: None,
    on_tick: Callable[[float, PhaseEvent | None], None] = lambda _t, _e: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 1.0,
) -> Outcome:
    seen = list(already_seen or [])
    start = clock()
    while True:
        for event in source.poll():
            seen.append(event)
            on_event(event)
            if event.phase in wait.failure_phases:
                reason = event.fields.get("reason", "no reason given")
                raise StepFailed(
                    f"the guest reported {event.phase} while waiting for {wait.describe}: {reason}",
                    hint="see the serial log and the diagnostics folder named below",
                )
            if event.phase in wait.wanted:
                return Outcome("phase", event, seen=seen)
        running, reason = domain_running()
        if not running:
            for event in source.poll():  # what the guest wrote just before it stopped
                seen.append(event)
                on_event(event)
                if event.phase in wait.wanted:
                    return Outcome("phase", event, seen=seen)
            if wait.stop_ends_wait and seen:
                return Outcome("stopped", seen[-1], reason, seen)
            last = f" (last phase: {_phase_text(seen[-1])})" if seen else " before reporting any phase"
            raise StepFailed(
                f"the domain stopped ({reason}) while waiting for {wait.describe}{last}",
                hint="see the serial log and the console screenshot in the diagnostics folder named below",
            )
        now = clock()
        if not seen and now >= first_sign:
            raise StepTimeout(
                f"no phase marker from the guest within {first_sign - start:.0f}s while waiting for {wait.describe}",
                hint="the guest did not boot far enough to report (see the console screenshot); "
                "raise timeouts.boot if it is just slow",
            )
        if now >= deadline:
            raise StepTimeout(
                f"{wait.describe} did not happen within {deadline - start:.0f}s "
                f"(last phase: {_phase_text(seen[-1]) if seen else 'none'})",
                hint="see the diagnostics folder named below; raise timeouts.install if the guest is just slow",
            )
        on_tick(now - start, seen[-1] if seen else None)
        sleep(poll)


def progress_line(elapsed: float, last: PhaseEvent | None, now_wall: float) -> str:
    """'phase specialize for 1m05s (typical ~2m)' for the live progress display."""
    if last is None:
        return f"waiting for the first phase marker ({_duration(elapsed)})"
    in_phase = max(0.0, now_wall - last.timestamp) if last.timestamp else elapsed
    typical = TYPICAL.get(last.phase)
    hint = f" (typical ~{_duration(typical)} under KVM)" if typical else ""
    return f"phase {last.phase} for {_duration(in_phase)}{hint}, {_duration(elapsed)} in this step"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def events_data(events: list[PhaseEvent]) -> list[dict[str, Any]]:
    return [{"phase": e.phase, "fields": dict(e.fields), "boot": e.boot} for e in events]
