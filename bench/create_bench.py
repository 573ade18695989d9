"""vmforge create's own overhead per VM: wall time minus the time spent waiting on the guest.

Runs 'vmforge create' on the probe guest for 1 VM, then for N VMs in parallel (default 5), on
qemu:///system under TCG, and destroys them.  The guest-bound steps are the phase wait
(setup-phases) and the agent wait (guest-channel); everything else is vmforge: plan, ISO
writing, libvirt calls, uploads, state writes, and the Python process start-up (the CLI import),
which is measured on its own in the same run ('vmforge --version') because this machine is
shared and noisy.  Not part of CI.

    .venv/bin/python bench/create_bench.py [--parallel 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GUEST_STEPS = ("setup-phases", "guest-channel")
SPEC = """os = "probe"
[vm]
name = "{name}"
virt_type = "qemu"
memory = "512MiB"
vcpus = 1
[disk]
size = "1GiB"
[network]
type = "none"
"""


def _vmforge(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VMFORGE_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "vmforge", *args], capture_output=True, text=True, env=env, check=False, timeout=1800
    )


def one(state: Path, name: str) -> dict[str, Any]:
    spec = state.parent / f"{name}.toml"
    spec.write_text(SPEC.format(name=name))
    began = time.monotonic()
    done = _vmforge(state, "create", "--spec", str(spec), "--json")
    wall = time.monotonic() - began
    try:
        if done.returncode != 0:
            raise SystemExit(f"create {name} failed: {done.stdout or done.stderr}")
        steps = json.loads(done.stdout)["steps"]
        seconds = {s["name"]: float(s["detail"].get("seconds", 0.0)) for s in steps}
        guest = sum(seconds.get(step, 0.0) for step in GUEST_STEPS)
        in_steps = sum(v for k, v in seconds.items() if k not in GUEST_STEPS)
        top = sorted(((v, k) for k, v in seconds.items() if k not in GUEST_STEPS), reverse=True)[:3]
        return {
            "wall": wall,
            "guest_wait": guest,
            "overhead": wall - guest,
            "vmforge_steps": in_steps,
            "top": ", ".join(f"{k} {v:.1f}s" for v, k in top),
        }
    finally:
        _vmforge(state, "destroy", name, "--spec", str(spec))


def _startup(state: Path) -> float:
    began = time.monotonic()
    _vmforge(state, "--version")
    return time.monotonic() - began


def _line(label: str, row: dict[str, Any]) -> str:
    return (
        f"{label}: wall {row['wall']:.1f}s, guest waits {row['guest_wait']:.1f}s, "
        f"vmforge overhead {row['overhead']:.1f}s (in steps {row['vmforge_steps']:.1f}s; slowest: {row['top']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmforge-create-bench-") as tmp:
        state = Path(tmp) / "state"
        startup = _startup(state)
        single = one(state, "vmft-s2c-bench-1")
        with ThreadPoolExecutor(args.parallel) as pool:
            many = list(pool.map(lambda i: one(state, f"vmft-s2c-bench-p{i}"), range(args.parallel)))
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"host: {os.cpu_count()} CPUs, load average {load} at the end; 'vmforge --version' took {startup:.1f}s")
    print(_line("1 VM", single))
    for i, row in enumerate(many):
        print(_line(f"{args.parallel} parallel, VM {i}", row))
    overheads = [row["overhead"] for row in many]
    print(
        f"{args.parallel} parallel: overhead per VM median {statistics.median(overheads):.1f}s "
        f"(min {min(overheads):.1f}s, max {max(overheads):.1f}s) vs {single['overhead']:.1f}s for 1 VM"
    )


if __name__ == "__main__":
    main()
