"""Follow a domain's serial console through libvirt and turn it into phase events.

The console stream works over remote URIs too; for a local domain whose serial is also logged
to a file (``<log file=…>``), :func:`follow_log_file` reads the same bytes from the file.
Either way the bytes go through one :class:`~vmforge.media.phases.PhaseReader`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt

from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.logs import get_logger
from vmforge.media.phases import PhaseEvent, PhaseReader

log = get_logger("guest.console")


class ConsoleFollower:
    """Reads the console in a background thread; ``wait_for`` blocks until a phase shows up."""

    def __init__(self, conn: Any, dom: Any, reader: PhaseReader | None = None) -> None:
        self.reader = reader or PhaseReader()
        self.raw = bytearray()  # everything read, for diagnostics
        self._conn = conn
        self._dom = dom
        self._own: Any = None  # the console's own connection (see start)
        self._stream: Any = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        name = self._dom.name()
        with libvirt_errors(f"opening the console of domain {name}"):
            # Blocking: a remote-driver client only reads the socket while a call waits on it (no
            # event loop here), so a non-blocking recv would never see data arrive.  A blocked
            # recv holds its connection (even virStreamAbort waits until data comes), so the
            # stream gets a connection of its own: the caller's stays free for destroy & co.
            self._own = connect(self._conn.getURI())
            dom = self._own.lookupByName(name)
            self._stream = self._own.newStream(0)
            dom.openConsole(None, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        self._thread = threading.Thread(target=self._pump, name="vmforge-console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._stream.recv(64 * 1024)
                if not isinstance(data, bytes) or not data:
                    break  # the domain stopped: end of stream
                with self._changed:
                    self.raw.extend(data)
                    self.reader.feed(data)
                    self._changed.notify_all()
        except libvirt.libvirtError as exc:
            self.error = (exc.get_error_message() or str(exc)).strip()
            log.debug("console stream ended: %s", self.error)
        finally:
            with self._changed:
                self.reader.close()
                self._changed.notify_all()

    def wait_for(self, phase: str, deadline: float, *, after_boot: int = -1,
                 clock: Callable[[], float] = time.monotonic) -> PhaseEvent | None:  # fmt: skip
        """The first ``phase`` event in a boot after ``after_boot``; None at the deadline."""
        with self._changed:
            while True:
                for event in self.reader.events:
                    if event.phase == phase and event.boot > after_boot:
                        return event
                remaining = deadline - clock()
                if remaining <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return None
                self._changed.wait(min(remaining, 0.5))

    def stop(self) -> None:
        """Never blocks for long: on a silent console (a guest that hangs before printing) the
        abort waits inside libvirt until the domain stops, so it runs in a daemon thread that
        finishes once the caller destroys the domain (or with the process)."""
        self._stop.set()
        closer = threading.Thread(target=self._close_stream, name="vmforge-console-close", daemon=True)
        closer.start()
        if self._thread is not None:
            self._thread.join(timeout=2)
        closer.join(timeout=1)

    def _close_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._stream.abort()  # wakes the blocked recv
        if self._thread is not None:
            self._thread.join()
        if self._own is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._own.close()


@contextlib.contextmanager
def follow_console(conn: Any, dom: Any, reader: PhaseReader | None = None) -> Iterator[ConsoleFollower]:
    follower = ConsoleFollower(conn, dom, reader)
    follower.start()
    try:
        yield follower
    finally:
        follower.stop()


def follow_log_file(path: Path, reader: PhaseReader, offset: int = 0) -> int:
    """Feed what ``path`` gained since ``offset``; returns the new offset (log-file fallback)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    reader.feed(data)
    return offset + len(data)
