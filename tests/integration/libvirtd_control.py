"""Restart the real libvirtd from a test (fault injection: "libvirtd restarted during a wait").

Running domains survive a libvirtd restart (QEMU keeps running and the new daemon reconnects to
its monitor), which is exactly the situation vmforge's waits must ride out. Works with systemd
(CI runners) and without it (this development machine, where scripts/setup-host starts
``libvirtd -d`` by hand).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import libvirt

SYSTEM_URI = "qemu:///system"


def _libvirtd_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _answers(uri: str) -> bool:
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    try:
        conn.getLibVersion()
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def wait_until_answering(uri: str = SYSTEM_URI, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(uri):
        if time.monotonic() > deadline:
            raise AssertionError(f"libvirtd did not answer at {uri} within {timeout:.0f} s after a restart")
        time.sleep(0.25)


def stop_libvirtd(timeout: float = 30.0) -> None:
    """Stop the daemon and wait until its process is gone (domains keep running)."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "stop", "libvirtd.service"], check=False, timeout=timeout)
    for pid in _libvirtd_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _libvirtd_pids():
        if time.monotonic() > deadline:
            raise AssertionError(f"libvirtd did not exit within {timeout:.0f} s of SIGTERM")
        time.sleep(0.1)


def start_libvirtd(uri: str = SYSTEM_URI, timeout: float = 60.0) -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "start", "libvirtd.service"], check=True, timeout=timeout)
    elif not _libvirtd_pids():
        Path("/run/libvirt").mkdir(parents=True, exist_ok=True)
        subprocess.run(["libvirtd", "-d"], check=True, timeout=timeout)
    wait_until_answering(uri, timeout)


def restart_libvirtd(uri: str = SYSTEM_URI, down_for: float = 1.0) -> None:
    """Stop libvirtd, keep it down for ``down_for`` seconds, start it and wait until it answers."""
    stop_libvirtd()
    time.sleep(down_for)
    start_libvirtd(uri)
