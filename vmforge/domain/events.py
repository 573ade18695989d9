"""Noticing that a domain stopped: libvirt lifecycle events, with polling as fallback and safety net.

libvirt delivers events only on a connection opened *after* an event loop implementation is
registered, and only while that loop runs.  :func:`ensure_event_loop` registers libvirt's default
implementation once per process and runs it in a daemon thread; a :class:`StopWatch` then opens
its own connection (so the caller's connection, opened earlier, does not matter), subscribes to
the domain's lifecycle events and reads the state once *after* subscribing, so a domain that
stopped before the wait began is seen at once and no stop can fall between the two.

Events can be missed: the daemon restarts (the connection closes; the watch reconnects and
resubscribes), a remote link dies silently (keepalive closes it), or the event connection cannot
be opened at all (the watch polls instead).  So even with events the state is read every
``safety_every`` seconds.  Every result says how the stop was noticed (:attr:`Stopped.noticed`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import libvirt

from vmforge.errors import LibvirtError, VmforgeError
from vmforge.libvirt_conn import DAEMON_HINT as _DAEMON_HINT
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.logs import get_logger

log = get_logger("domain.events")

Mechanism = Literal["auto", "events", "poll"]

# virDomainShutoffReason (what dom.state() reports for a shut-off domain)
SHUTOFF_REASONS = {0: "unknown", 1: "shutdown", 2: "destroyed", 3: "crashed", 4: "migrated", 5: "saved", 6: "failed"}
# virDomainEventStoppedDetailType (what a STOPPED lifecycle event carries)
STOPPED_DETAILS = {
    0: "shutdown",
    1: "destroyed",
    2: "crashed",
    3: "migrated",
    4: "saved",
    5: "failed",
    6: "from snapshot",
}

SAFETY_EVERY = 5.0  # seconds between state reads while waiting on events
KEEPALIVE = (5, 3)  # interval, count: a silent remote link is closed after ~20 s


@dataclass(frozen=True)
class Stopped:
    reason: str  # shutdown, destroyed, crashed, ...
    noticed: str  # "event", "poll" (a state read: polling, or the safety net), "already" (off before the wait)
    mechanism: str  # "events" or "polling": what the watch used when the stop was noticed


_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None
_loop_error: str | None = None


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            log.debug("libvirt event loop iteration failed")
            time.sleep(0.1)


def ensure_event_loop() -> str | None:
    """Register libvirt's default event loop (once per process) and run it in a daemon thread.

    Returns None when it runs, else why it cannot.  Connections opened before this call never
    receive events; connections opened after it do."""
    global _loop_thread, _loop_error  # noqa: PLW0603 - one event loop per process, by libvirt's design
    with _loop_lock:
        if _loop_thread is None and _loop_error is None:
            try:
                libvirt.virEventRegisterDefaultImpl()  # raises on failure
            except libvirt.libvirtError as exc:
                _loop_error = (exc.get_error_message() or str(exc)).strip()
                return _loop_error
            _loop_thread = threading.Thread(target=_run_event_loop, name="vmforge-libvirt-events", daemon=True)
            _loop_thread.start()
        return _loop_error


def _domain_uri(dom: Any) -> str:
    with libvirt_errors(f"reading the connection of {dom.name()}"):
        return str(dom.connect().getURI())


class StopWatch:
    """Watches one domain until it stops.  ``with StopWatch(dom) as watch: watch.wait(600)``.

    ``mechanism``: "auto" (events, polling when they cannot be had), "events" (an error when
    they cannot be had), "poll" (never subscribe).  ``uri``: where to open the event connection
    (default: the URI of ``dom``'s connection).  ``opener`` opens that connection (injectable).
    """

    def __init__(
        self,
        dom: Any,
        *,
        uri: str | None = None,
        mechanism: Mechanism = "auto",
        poll: float = 0.5,
        safety_every: float = SAFETY_EVERY,
        opener: Callable[[str], Any] = connect,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dom = dom
        with libvirt_errors("reading the domain to watch"):
            self.name = str(dom.name())
            self.uuid = str(dom.UUIDString())
        self.uri = uri
        self.requested = mechanism
        self.mechanism = "polling"
        self.why_polling: str | None = "not started"
        self.poll_every = poll
        self.safety_every = safety_every
        self.opener = opener
        self.clock = clock
        self.sleep = sleep
        self.resubscribed = 0  # how often the event connection was lost and reopened
        self._signal = threading.Event()
        self._event_detail: int | None = None
        self._lost = False
        self._disconnected = False
        self._lost_error = ""
        self._conn: Any = None
        self._edom: Any = None
        self._callback: int | None = None
        self._last_read = 0.0
        self._stopped: Stopped | None = None

    # -- subscribing ---------------------------------------------------------------------------

    def __enter__(self) -> StopWatch:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self.requested == "poll":
            self.why_polling = "polling was asked for"
        else:
            try:
                self._subscribe()
            except VmforgeError as exc:
                if self.requested == "events":
                    raise
                self.why_polling = exc.message
                log.info("watching %s by polling its state: %s", self.name, exc.message)
        self._read_state("already")

    def _subscribe(self) -> None:
        problem = ensure_event_loop()
        if problem is not None:
            raise LibvirtError(f"libvirt's event loop is not available: {problem}")
        uri = self.uri = self.uri or _domain_uri(self.dom)  # kept: reconnecting must not need dom's connection
        conn = self.opener(uri)  # after the loop is registered: this connection gets events
        try:
            with libvirt_errors(f"subscribing to lifecycle events of {self.name} on {uri}"):
                with contextlib.suppress(libvirt.libvirtError):  # not every driver has keepalive
                    conn.setKeepAlive(*KEEPALIVE)
                conn.registerCloseCallback(self._on_close, None)
                edom = conn.lookupByUUIDString(self.uuid)
                callback = conn.domainEventRegisterAny(
                    edom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
                )
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
            raise
        self._conn, self._edom, self._callback = conn, edom, callback
        self._lost = False
        self.mechanism, self.why_polling = "events", None
        log.debug("watching %s through libvirt lifecycle events on %s", self.name, uri)

    def _on_lifecycle(self, _conn: Any, _dom: Any, event: int, detail: int, _opaque: Any) -> None:
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            self._event_detail = detail
            self._signal.set()

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        self._lost = True  # daemon restarted, remote link died, keepalive timed out
        log.debug("event connection for %s closed (reason %s)", self.name, reason)
        self._signal.set()

    def _unsubscribe(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(libvirt.libvirtError):
            if self._callback is not None:
                conn.domainEventDeregisterAny(self._callback)
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
        self._callback, self._edom = None, None

    def _reconnect(self) -> None:
        """The event connection closed (daemon restart, dead remote link): open a new one.  While
        that fails (the daemon is still down) the watch stays disconnected and tries again at
        the next read; a stop in the meantime sent no event to us, so the state is read."""
        self._unsubscribe()
        self._disconnected = True
        self._signal.clear()
        self._lost = False
        try:
            self._subscribe()
        except VmforgeError as exc:
            self._lost_error = exc.message
            log.debug("reconnecting the event connection for %s failed: %s", self.name, exc.message)
            return
        self._disconnected = False
        self.resubscribed += 1
        log.info("event connection for %s reopened after it closed", self.name)

    def close(self) -> None:
        self._unsubscribe()

    # -- reading -------------------------------------------------------------------------------

    def _state(self) -> tuple[int, int] | None:
        """The domain's (state, reason); None while the event connection is being reopened."""
        if self._lost or self._disconnected:
            self._reconnect()
            if self._disconnected:
                return None
        dom = self._edom if self._edom is not None else self.dom
        try:
            state, reason = dom.state()
        except libvirt.libvirtError as exc:
            if self._edom is None:
                raise LibvirtError(
                    f"reading the state of {self.name} failed: {(exc.get_error_message() or str(exc)).strip()}"
                ) from None
            self._lost = True  # the event connection died before its close callback ran
            return self._state()
        return int(state), int(reason)

    def _read_state(self, noticed: str) -> Stopped | None:
        self._last_read = self.clock()
        was_disconnected = self._disconnected or self._lost
        found = self._state()
        if found is None:
            return None
        if was_disconnected:
            noticed = "poll"  # a stop while the connection was down sent no event
        state, reason = found
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            self._stopped = Stopped(SHUTOFF_REASONS.get(reason, str(reason)), noticed, self.mechanism)
        return self._stopped

    def _take_signal(self) -> Stopped | None:
        """Handle what the event thread reported: a stop, or the connection closing."""
        self._signal.clear()
        detail = self._event_detail
        if detail is None or self._lost:
            return self._read_state("poll")
        found = self._read_state("event")
        if found is None:  # stopped and already started again: the event is the evidence
            self._stopped = Stopped(STOPPED_DETAILS.get(detail, str(detail)), "event", self.mechanism)
        return self._stopped

    def check(self) -> Stopped | None:
        """Non-blocking: the stop if it happened.  Reads the state only when polling, or when
        the safety interval has passed (the retry interval while reconnecting)."""
        if self._stopped is not None:
            return self._stopped
        if self._signal.is_set():
            return self._take_signal()
        if self.clock() - self._last_read >= self._read_every():
            return self._read_state("poll")
        return None

    def _read_every(self) -> float:
        if self._disconnected:
            return self.poll_every
        return self.safety_every if self.mechanism == "events" else 0.0

    def running(self) -> tuple[bool, str]:
        """(False, reason) once stopped, else (True, "")."""
        stopped = self.check()
        return (False, stopped.reason) if stopped else (True, "")

    def wait(self, timeout: float) -> Stopped | None:
        """Block until the domain stops (the stop) or ``timeout`` seconds pass (None; an error
        when the connection to libvirt was lost and could not be reopened by then)."""
        deadline = self.clock() + timeout
        while True:
            stopped = self.check()
            if stopped is not None:
                return stopped
            remaining = deadline - self.clock()
            if remaining <= 0:
                if self._disconnected:
                    raise LibvirtError(
                        f"lost the connection to libvirt while waiting for {self.name} to stop: {self._lost_error}",
                        hint=_DAEMON_HINT,
                    )
                return None
            if self.mechanism == "events" and not self._disconnected:
                next_read = self._last_read + self.safety_every - self.clock()
                self._signal.wait(max(0.0, min(remaining, next_read)))
            else:
                self.sleep(max(0.0, min(remaining, self.poll_every)))
