"""Helpers for the 'vmforge create' integration tests on the probe guest (real libvirtd + QEMU TCG)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import libvirt
from probe_vm import MACHINE_CACHE

REPO = Path(__file__).resolve().parents[2]
POOL = "vmforge"


def probe_spec(
    path: Path,
    name: str,
    *,
    ivshmem: bool = False,
    boot: str = "300s",
    package: Path | None = None,
    snapshot: str | None = None,
) -> Path:
    lines = [
        'os = "probe"',
        "[vm]",
        f'name = "{name}"',
        'virt_type = "qemu"',
        'memory = "512MiB"',
        "vcpus = 1",
        *([f'snapshot = "{snapshot}"'] if snapshot else []),
        "[disk]",
        'size = "1GiB"',
        "[network]",
        'type = "none"',
        "[timeouts]",
        f'boot = "{boot}"',
        'agent = "300s"',
        'shutdown = "60s"',  # the probe powers off on ACPI/agent requests in seconds; this is the ceiling
    ]
    if ivshmem:
        lines += ["[display]", 'resolution = "640x480"', "[ivshmem]", "enabled = true"]
    if package is not None:
        lines += ["[[packages]]", 'name = "shellapp"', f'path = "{package}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(state: Path) -> dict[str, str]:
    """The state folder of the test; the machine's probe image cache (built once per machine)."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VMFORGE_STATE_DIR": str(state),
        "XDG_CACHE_HOME": str(MACHINE_CACHE.parent),
    }


def run(state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmforge", *args],
        capture_output=True,
        text=True,
        env=cli_env(state),
        timeout=timeout,
        check=False,
    )


def start(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vmforge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(state),
        start_new_session=True,
    )


def read_state(state: Path, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads((state / "vms" / name / "state.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_until(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"create exited {proc.returncode} before {what}: {err[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def volumes(conn: Any, prefix: str) -> list[str]:
    pool = conn.storagePoolLookupByName(POOL)
    pool.refresh(0)
    return sorted(v for v in pool.listVolumes() if v.startswith(prefix))


def domains(conn: Any, prefix: str) -> list[str]:
    return sorted(d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix))


def force_cleanup(conn: Any, name: str, state: Path) -> None:
    """Last resort after a failed test: vmforge's own destroy."""
    run(state, "destroy", name, "--connect", "qemu:///system", timeout=120)
    try:
        conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    raise AssertionError(f"domain {name} survived cleanup")
