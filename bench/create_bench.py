"""vmforge create's own overhead per VM: wall time minus the time spent waiting on the guest.

Runs 'vmforge create' on the probe guest for 1 VM, then for N VMs in parallel (default 3), on
qemu:///system under TCG, and destroys them.  The guest-bound steps are the phase wait
(setup-phases) and the agent wait (guest-channel); everything else is vmforge (plan, ISO
writing, libvirt calls, uploads, state writes) plus Python start-up.  Not part of CI.

    .venv/bin/python bench/create_bench.py [--parallel 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def one(state: Path, name: str) -> dict[str, float]:
    spec = state.parent / f"{name}.toml"
    spec.write_text(SPEC.format(name=name))
    began = time.monotonic()
    done = _vmforge(state, "create", "--spec", str(spec), "--json")
    wall = time.monotonic() - began
    try:
        if done.returncode != 0:
            raise SystemExit(f"create {name} failed: {done.stdout or done.stderr}")
        steps = json.loads(done.stdout)["steps"]
        guest = sum(s["detail"].get("seconds", 0.0) for s in steps if s["name"] in GUEST_STEPS)
        return {"wall": wall, "guest_wait": guest, "overhead": wall - guest}
    finally:
        _vmforge(state, "destroy", name, "--spec", str(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmforge-create-bench-") as tmp:
        state = Path(tmp) / "state"
        single = one(state, "vmforge-bench-1")
        with ThreadPoolExecutor(args.parallel) as pool:
            many = list(pool.map(lambda i: one(state, f"vmforge-bench-p{i}"), range(args.parallel)))
    print(
        f"1 VM:  wall {single['wall']:.1f}s, guest waits {single['guest_wait']:.1f}s, "
        f"vmforge overhead {single['overhead']:.1f}s"
    )
    for i, row in enumerate(many):
        print(
            f"{args.parallel} parallel, VM {i}: wall {row['wall']:.1f}s, guest waits {row['guest_wait']:.1f}s, "
            f"vmforge overhead {row['overhead']:.1f}s"
        )


if __name__ == "__main__":
    main()
