"""Install-media benchmarks (not CI): run with  .venv/bin/python bench/media_bench.py [WORKDIR]

1. ISO inspection time on a small and a multi-GB installer ISO (should not depend on size).
2. Answer-ISO build time (vmforge/pycdlib, UDF + Joliet) against
   ``genisoimage -J -joliet-long -udf`` on the same ~500 MB tree of a few large and a few
   thousand small files, as a ratio measured in one run.  Both read the tree from disk
   (vmforge gets :class:`FileOnDisk` entries with the sha256 its caller computed, as the media
   build does for packages).  vmforge fsyncs its image before the rename (a reused image must
   be whole); genisoimage does not, so both ratios are printed: against plain genisoimage and
   genisoimage + fsync.
   The runs alternate and the best of each is kept (the machine is shared).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media_factory import FakeImage, build_iso, build_wim
from vmforge.media.answer_iso import FileOnDisk, write_answer_iso
from vmforge.media.iso_inspect import inspect_iso

BIG_WIM_BYTES = 3 * 1024**3
REPEATS = 5


def _timed(func, *args, repeat=5):  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_inspection(work: Path) -> None:
    small_wim = build_wim(work / "small.wim", (FakeImage("Windows 11 Pro", "Professional", 26100),))
    small_iso = build_iso(work / "small.iso", {"sources/install.wim": small_wim})
    tree = work / "big.tree" / "Windows"
    tree.mkdir(parents=True)
    with (tree / "payload.bin").open("wb") as handle:
        for _ in range(BIG_WIM_BYTES // (64 * 1024**2)):
            handle.write(os.urandom(64 * 1024**2))
    big_wim = work / "big.wim"
    subprocess.run(
        ["wimcapture", str(tree.parent), str(big_wim), "Windows 11 Pro", "--compress=none",
         "--image-property", "WINDOWS/EDITIONID=Professional", "--image-property", "WINDOWS/ARCH=9",
         "--image-property", "WINDOWS/INSTALLATIONTYPE=Client", "--image-property", "WINDOWS/VERSION/MAJOR=10",
         "--image-property", "WINDOWS/VERSION/BUILD=26100"],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(tree.parent)
    big_iso = build_iso(work / "big.iso", {"sources/install.wim": big_wim})
    big_wim.unlink()
    t_small, _ = _timed(inspect_iso, small_iso)
    t_big, info = _timed(inspect_iso, big_iso)
    size = big_iso.stat().st_size / 1024**3
    print(f"inspection: small ISO {t_small * 1000:.1f} ms, {size:.1f} GiB ISO {t_big * 1000:.1f} ms "
          f"(family {info.family.value})")  # fmt: skip
    big_iso.unlink()


def bench_answer_iso(work: Path) -> None:
    tree = work / "tree"
    files: dict[str, bytes] = {}
    for n in range(4):
        files[f"packages/big{n}.bin"] = os.urandom(110 * 1024**2)
    for n in range(3000):
        files[f"$WinPEDriver$/drv{n // 100:02d}/file{n:04d}.inf"] = os.urandom(8 * 1024 + n)
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    total = sum(len(d) for d in files.values()) / 1024**2
    on_disk = {
        name: FileOnDisk(tree / name, hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items()
    }
    del files
    out = work / "gen.iso"

    def genisoimage(fsync: bool) -> None:
        subprocess.run(
            ["genisoimage", "-quiet", "-J", "-joliet-long", "-udf", "-o", str(out), str(tree)],
            check=True, capture_output=True,
        )  # fmt: skip
        if fsync:
            fd = os.open(out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def vmforge(durable: bool) -> None:
        write_answer_iso(work / "vmf.iso", on_disk, durable=durable)

    t_gen = t_gen_sync = t_vmf = t_vmf_nosync = float("inf")
    for _ in range(REPEATS):  # alternate, so a burst of load hits all four
        t_gen = min(t_gen, _timed(genisoimage, False, repeat=1)[0])
        t_vmf_nosync = min(t_vmf_nosync, _timed(vmforge, False, repeat=1)[0])
        t_gen_sync = min(t_gen_sync, _timed(genisoimage, True, repeat=1)[0])
        t_vmf = min(t_vmf, _timed(vmforge, True, repeat=1)[0])
    print(f"answer ISO, {len(on_disk)} files, {total:.0f} MiB (best of {REPEATS}): "
          f"writing without a sync: genisoimage {t_gen:.2f} s, vmforge {t_vmf_nosync:.2f} s, "
          f"ratio {t_vmf_nosync / t_gen:.2f}x (target <= 2.0x); "
          f"durable (fsync): genisoimage + fsync {t_gen_sync:.2f} s, vmforge as it runs {t_vmf:.2f} s, "
          f"ratio {t_vmf / t_gen_sync:.2f}x; vmforge as it runs vs plain genisoimage {t_vmf / t_gen:.2f}x")  # fmt: skip


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    work = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="vmforge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "--answer-iso-only" not in sys.argv:
            bench_inspection(work)
        bench_answer_iso(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
