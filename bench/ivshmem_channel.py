"""Benchmark the ivshmem channel: 4K BGRA frame throughput vs memcpy, and message round trips.

    python bench/ivshmem_channel.py [--resolution 3840x2160] [--frames 120] [--pings 2000] [--runs 3]

Runs `vmforge channel bench` logic --runs times (each with two fresh host processes) and prints
one JSON document: every run plus the median ratio and latencies.  The ratio is measured within
each run (channel bytes/s divided by plain memcpy bytes/s in the same process), so it does not
depend on how fast the machine is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmforge.ivshmem.bench import BenchConfig, run_bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", default="3840x2160")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.split("x"))
    runs = [run_bench(BenchConfig(width, height, args.frames, args.pings)) for _ in range(args.runs)]
    summary = {
        "resolution": args.resolution,
        "runs": runs,
        "median_ratio_to_memcpy": statistics.median(r["frames"]["ratio_to_memcpy"] for r in runs),
        "median_consumer_cpu_ratio_to_memcpy": statistics.median(
            r["frames"]["consumer_cpu_ratio_to_memcpy"] for r in runs
        ),
        "median_p50_us": statistics.median(r["latency_us"]["p50"] for r in runs),
        "median_p99_us": statistics.median(r["latency_us"]["p99"] for r in runs),
    }
    summary["meets_target"] = summary["median_ratio_to_memcpy"] >= runs[0]["frames"]["target_ratio"]
    print(json.dumps(summary, indent=2))
    return 0 if summary["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
