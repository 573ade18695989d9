"""Waiting for a domain to stop on the real libvirtd: lifecycle events, the polling fallback, the
safety net across a libvirtd restart, deadlines, and a domain that stopped before the wait.

The subject is a diskless TCG domain (SeaBIOS finds nothing to boot and idles), with
``on_reboot = destroy`` like vmforge's install shape, so a reset is what Setup's reboot looks like.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.integration.conftest import SYSTEM_URI, undefine_if_present
from tests.integration.libvirtd_control import start_libvirtd, stop_libvirtd
from vmforge.domain.events import StopWatch
from vmforge.domain.lifecycle import wait_for_stop, wait_stopped
from vmforge.errors import VmforgeError

pytestmark = pytest.mark.integration

NAME = "vmft-s2d-wait"
XML = f"""<domain type='qemu'>
  <name>{NAME}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <on_reboot>destroy</on_reboot>
  <devices><graphics type='vnc' listen='127.0.0.1' autoport='yes'/></devices>
</domain>"""


@pytest.fixture
def dom() -> Iterator[Any]:
    conn = libvirt.open(SYSTEM_URI)
    undefine_if_present(conn, NAME)
    try:
        yield conn.defineXML(XML)
    finally:
        conn.close()
        cleanup = libvirt.open(SYSTEM_URI)  # the test's connection may be dead (libvirtd restart)
        try:
            undefine_if_present(cleanup, NAME)
        finally:
            cleanup.close()


def later(seconds: float, action: Any) -> threading.Timer:
    """``action(conn, dom)`` on a connection of its own, ``seconds`` from now (another client)."""

    def run() -> None:
        conn = libvirt.open(SYSTEM_URI)
        try:
            action(conn.lookupByName(NAME))
        finally:
            conn.close()

    timer = threading.Timer(seconds, run)
    timer.start()
    return timer


def test_events_notice_a_guest_reset_and_a_destroy(dom: Any) -> None:
    dom.create()
    timer = later(1.0, lambda d: d.reset())  # the guest "reboots": on_reboot=destroy stops it
    # A safety-net read far in the future: only an event can end this wait early.
    with StopWatch(dom, safety_every=3600) as watch:
        assert watch.mechanism == "events" and watch.why_polling is None
        stopped = watch.wait(120)
    timer.join()
    assert stopped is not None and stopped.noticed == "event" and stopped.mechanism == "events"
    assert stopped.reason in ("shutdown", "destroyed")
    assert not dom.isActive()

    dom.create()
    timer = later(1.0, lambda d: d.destroy())
    stopped = wait_stopped(dom, 120)
    timer.join()
    assert (stopped.reason, stopped.noticed) == ("destroyed", "event")


def test_a_stop_followed_by_a_restart_is_not_missed(dom: Any) -> None:
    """Between two state reads the domain stops and starts again: only the event tells."""
    dom.create()

    def bounce(d: Any) -> None:
        d.destroy()
        d.create()

    with StopWatch(dom, safety_every=3600) as watch:
        timer = later(1.0, bounce)
        stopped = watch.wait(120)
        timer.join()
    assert stopped is not None and (stopped.reason, stopped.noticed) == ("destroyed", "event")
    assert dom.isActive()  # running again


def test_a_domain_already_off_returns_at_once(dom: Any) -> None:
    stopped = wait_stopped(dom, 0)  # defined, never started
    assert stopped.noticed == "already" and stopped.mechanism == "events"
    dom.create()
    dom.destroy()
    assert wait_for_stop(dom, 0) == "destroyed"
    assert wait_stopped(dom, 0, mechanism="poll").noticed == "already"


def test_deadline_is_honoured_on_both_paths(dom: Any) -> None:
    dom.create()
    for mechanism in ("auto", "poll"):
        began = time.monotonic()
        with pytest.raises(VmforgeError, match=f"{NAME} still runs after 2s"):
            wait_stopped(dom, 2, mechanism=mechanism)  # type: ignore[arg-type]
        waited = time.monotonic() - began
        assert 2 <= waited < 60, (mechanism, waited)
    assert dom.isActive()


def test_forced_polling_and_the_fallback_when_events_cannot_be_had(dom: Any) -> None:
    dom.create()
    timer = later(1.0, lambda d: d.destroy())
    stopped = wait_stopped(dom, 120, mechanism="poll", poll=0.2)
    timer.join()
    assert (stopped.reason, stopped.noticed, stopped.mechanism) == ("destroyed", "poll", "polling")

    # No daemon behind this socket: the event connection cannot be opened, the wait polls.
    dead = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    dom.create()
    timer = later(1.0, lambda d: d.destroy())
    with StopWatch(dom, uri=dead, poll=0.2) as watch:
        assert watch.mechanism == "polling" and "cannot connect" in str(watch.why_polling)
        stopped = watch.wait(120)
    timer.join()
    assert stopped is not None and (stopped.noticed, stopped.mechanism) == ("poll", "polling")
    with pytest.raises(VmforgeError, match="cannot connect"):
        StopWatch(dom, uri=dead, mechanism="events").start()


def test_a_stop_while_libvirtd_is_down_is_still_noticed(dom: Any) -> None:
    """The stop happens while the daemon is down, so no event can reach the watch: it reconnects
    when the daemon is back, resubscribes, and its state read notices the stop."""
    dom.create()
    pid = int(Path(f"/run/libvirt/qemu/{NAME}.pid").read_text())
    result: dict[str, Any] = {}
    watch = StopWatch(dom, poll=0.5)
    watch.start()
    assert watch.mechanism == "events"

    def wait() -> None:
        try:
            result["stopped"] = watch.wait(180)
        except VmforgeError as exc:
            result["error"] = exc

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        stop_libvirtd()
        os.kill(pid, signal.SIGKILL)  # QEMU dies while nobody could send an event about it
        time.sleep(2)
    finally:
        start_libvirtd()
    waiter.join(240)
    watch.close()
    assert "error" not in result, result
    stopped = result["stopped"]
    assert stopped is not None and stopped.noticed in ("poll", "event")
    assert watch.resubscribed >= 1 and watch.mechanism == "events"
