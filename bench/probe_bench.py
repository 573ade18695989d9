"""Benchmark: probe boot-to-agent time and agent copy throughput (vs a local copy), in one run.

    .venv/bin/python bench/probe_bench.py [--mb 16] [--json]

Boots the cached probe image under plain QEMU (TCG) with the test helper in
tests/integration/probe_vm.py (the real probe boots from vmforge's domain XML once it exists),
then copies a random file into the guest and back through the agent's QEMU socket, verified by
the guest's sha256sum.  Not part of CI: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

from probe_vm import MACHINE_CACHE, boot_probe  # noqa: E402

from vmforge.guest.agent import AgentTransport  # noqa: E402
from vmforge.guest.os_linux import LinuxAdapter  # noqa: E402
from vmforge.guest.session import Guest  # noqa: E402
from vmforge.probe.image import ensure_probe_image  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=16, help="size of the copied file in MiB")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"load_average_1m": os.getloadavg()[0]}
    started = time.monotonic()
    image = ensure_probe_image(MACHINE_CACHE)
    results["image_seconds"] = round(time.monotonic() - started, 2)
    with tempfile.TemporaryDirectory(prefix="vmforge-bench-") as tmp:
        work = Path(tmp)
        payload = work / "payload.bin"
        payload.write_bytes(os.urandom(args.mb * 1024 * 1024))
        local_start = time.monotonic()
        shutil.copyfile(payload, work / "local-copy.bin")
        local = time.monotonic() - local_start
        results["local_copy_mb_s"] = round(args.mb / max(local, 1e-6), 1)
        with boot_probe(image, work) as vm:
            transport = vm.transport()
            transport.wait_ready(time.monotonic() + 300)
            results["boot_to_agent_seconds"] = round(time.monotonic() - vm.started, 2)
            vm.wait_phase("probe-ready", timeout=60)
            results["phases"] = [e.phase for e in vm.phases()]
            for chunk_kib in (64, 1024):
                guest = Guest(AgentTransport(transport.channel, chunk_size=chunk_kib * 1024), LinuxAdapter())
                up_start = time.monotonic()
                guest.copy_in(payload, "/tmp/payload.bin")
                up = time.monotonic() - up_start
                down_start = time.monotonic()
                guest.copy_out("/tmp/payload.bin", work / "back.bin")
                down = time.monotonic() - down_start
                # Verified copies: the time includes the guest's sha256sum (slow under TCG).
                results[f"agent_upload_mb_s_{chunk_kib}k"] = round(args.mb / up, 2)
                results[f"agent_download_mb_s_{chunk_kib}k"] = round(args.mb / down, 2)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
