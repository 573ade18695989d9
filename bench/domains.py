"""Benchmarks for the domains issue (not CI; run by hand, one run each):

1. define + undefine 100 domains through vmforge (libvirt API, with VALIDATE) versus
   ``virsh define`` / ``virsh undefine`` of the same XML; prints the ratio.
2. a clone of a 64 GiB qcow2 base holding 1 GiB of data: qcow2 overlay versus a full copy
   (libvirt's createXMLFrom).

    python bench/domains.py [--count 100] [--data-gib 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libvirt
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.goldencases import GOLDEN
from vmforge.domain.lifecycle import define_xml
from vmforge.plan import DiskPlan
from vmforge.storage import create_overlay, create_volume, ensure_pool, volume_xml

URI = "qemu:///system"
PREFIX = "vmft-bench-"


def named(xml: str, name: str) -> str:
    root = etree.fromstring(xml.encode())
    root.find("name").text = name  # type: ignore[union-attr]
    return etree.tostring(root, encoding="unicode")


def bench_define(conn: libvirt.virConnect, count: int) -> None:
    template = (GOLDEN / "win11-uefi-secure-tpm-install.xml").read_text()
    start = time.perf_counter()
    for i in range(count):
        dom = define_xml(conn, named(template, f"{PREFIX}{i}"))
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    ours = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(count):
            path = Path(tmp, f"{i}.xml")
            path.write_text(named(template, f"{PREFIX}{i}"))
            files.append(path)
        start = time.perf_counter()
        for i, path in enumerate(files):
            subprocess.run(
                ["virsh", "-q", "-c", URI, "define", "--validate", str(path)], check=True, capture_output=True
            )
            subprocess.run(
                ["virsh", "-q", "-c", URI, "undefine", "--nvram", f"{PREFIX}{i}"], check=True, capture_output=True
            )
        virsh = time.perf_counter() - start
    print(f"define+undefine x{count}: vmforge {ours:.2f}s, virsh {virsh:.2f}s, ratio vmforge/virsh {ours / virsh:.2f}")


def bench_clone(conn: libvirt.virConnect, data_gib: int) -> None:
    folder = Path(f"/var/tmp/{PREFIX}pool-{os.getpid()}")
    plan = DiskPlan(size=64 * 1024**3, bus="virtio", pool=f"{PREFIX}pool", pool_dir=folder, volume="base.qcow2")
    pool = ensure_pool(conn, plan)
    try:
        base = create_volume(pool, plan)
        subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data_gib}G", base.key()],
            check=True,
            capture_output=True,
        )
        pool.refresh(0)
        start = time.perf_counter()
        create_overlay(pool, "overlay.qcow2", base)
        overlay = time.perf_counter() - start
        start = time.perf_counter()
        pool.createXMLFrom(volume_xml("copy.qcow2", plan.size, "qcow2"), base, 0)
        copy = time.perf_counter() - start
        print(f"clone of 64 GiB base with {data_gib} GiB data: overlay {overlay:.3f}s, full copy {copy:.2f}s")
    finally:
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()
        pool.undefine()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--data-gib", type=int, default=1)
    args = parser.parse_args()
    conn = libvirt.open(URI)
    try:
        bench_define(conn, args.count)
        bench_clone(conn, args.data_gib)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
