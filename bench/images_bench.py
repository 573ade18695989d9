"""Benchmarks for golden images (not CI; run by hand, one run each), on qemu:///system under TCG
with the probe guest:

1. ``vmforge create`` of a probe VM (the full pipeline: the baseline a clone is compared with);
2. ``vmforge image build`` of the same spec: a miss (create + generalize + capture), then a
   cache hit (boots nothing) - wall time of the process and the time inside the command;
3. ``vmforge clone``: wall time to a ready, specialized clone, and the boot-to-agent part of it;
4. overlay creation for a 64 GiB base versus a full copy: that benchmark already exists,
   ``bench_clone`` in bench/domains.py, and is run from there (not duplicated here).

    python bench/images_bench.py [--data-gib 1]

Times are this machine's, with whatever else runs on it: compare the rows of one run.  One run
(2026-11-22, load average < 1, TCG): create 24.7 s; build miss 30.5 s; cache hit 1.9 s wall
(0.02 s in the command); clone to ready 22.0 s (15.2 s of it boot to agent); 64 GiB base with
1 GiB of data: overlay 0.033 s, full copy 1.30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import libvirt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))

import pools  # noqa: E402 - tests/integration/pools.py
from domains import bench_clone  # noqa: E402 - bench/domains.py, the one overlay benchmark
from images_support import probe_vm_spec  # noqa: E402 - the golden-image test's probe VM spec

from vmforge import paths  # noqa: E402

URI = "qemu:///system"
PREFIX = "vmft-s2i-bench-"
READY_S = 900.0


class Cli:
    def __init__(self, state: Path) -> None:
        cache = os.environ.get("VMFORGE_TEST_CACHE") or str(paths.cache_home())
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "VMFORGE_STATE_DIR": str(state), "XDG_CACHE_HOME": cache}

    def run(self, *args: str) -> tuple[float, dict[str, Any]]:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "vmforge", *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=3600,
        )
        wall = time.monotonic() - began
        if done.returncode != 0:
            raise SystemExit(f"vmforge {' '.join(args)} failed ({done.returncode}): {done.stdout[-3000:]}")
        return wall, json.loads(done.stdout) if done.stdout.strip() else {}


def write_spec(folder: Path, name: str, pool_dir: Path) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(probe_vm_spec(name, PREFIX + "pool", pool_dir, READY_S))
    return path


def remove_pool(pool_name: str) -> None:
    conn = libvirt.open(URI)
    try:
        pools.remove_pool(conn, pool_name)
    finally:
        conn.close()


def bench_images(folder: Path) -> None:
    state = folder / "state"
    pool_dir = Path(f"/var/tmp/{PREFIX}pool-{os.getpid()}")
    cli = Cli(state)
    created = f"{PREFIX}create"
    golden = write_spec(folder, f"{PREFIX}golden", pool_dir)
    clone = f"{PREFIX}clone"
    try:
        create_wall, _ = cli.run("create", "--spec", str(write_spec(folder, created, pool_dir)), "--json")
        cli.run("destroy", created, "--connect", URI, "--json")
        miss_wall, miss = cli.run("image", "build", "--spec", str(golden), "--json")
        hit_wall, hit = cli.run("image", "build", "--spec", str(golden), "--json")
        assert hit["cache_hit"] and hit["boots"] == 0
        clone_wall, cloned = cli.run("clone", hit["image"]["id"], clone, "--spec", str(golden), "--json")
        version_wall, _ = cli.run("image", "list", "--json")
        print(f"vmforge create (probe, full pipeline):    {create_wall:7.1f}s wall")
        print(f"image build, miss (create+capture):       {miss_wall:7.1f}s wall, {miss['seconds']:.1f}s in command")
        print(f"image build, cache hit (0 boots):         {hit_wall:7.1f}s wall, {hit['seconds']:.2f}s in command")
        print(f"vmforge image list (CLI start-up alone):  {version_wall:7.1f}s wall")
        print(
            f"clone to ready (specialized):             {clone_wall:7.1f}s wall, "
            f"boot to agent {cloned['ready_seconds']:.1f}s; clone/create {clone_wall / create_wall:.2f}"
        )
    finally:
        for name in (clone, created, f"{PREFIX}golden"):
            subprocess.run(
                [sys.executable, "-m", "vmforge", "destroy", name, "--connect", URI],
                env=cli.env,
                capture_output=True,
                check=False,
            )
        subprocess.run(
            [sys.executable, "-m", "vmforge", "image", "prune", "--connect", URI],
            env=cli.env,
            capture_output=True,
            check=False,
        )
        remove_pool(f"{PREFIX}pool")
        shutil.rmtree(pool_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-gib", type=int, default=1, help="data in the 64 GiB base (overlay benchmark)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmforge-images-bench-") as tmp:
        bench_images(Path(tmp))
    conn = libvirt.open(URI)
    try:
        bench_clone(conn, args.data_gib)  # bench/domains.py: overlay vs full copy of a 64 GiB base
    finally:
        conn.close()


if __name__ == "__main__":
    main()
