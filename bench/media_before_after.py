"""Answer-ISO writer before/after in one run (not CI):
.venv/bin/python bench/media_before_after.py [N] [COMMIT]

"before" is vmforge/media/answer_iso.py as of COMMIT (default 26fa8d8: contents as bytes in
memory, pycdlib's 32 KiB copy loop; b3136b3: FileOnDisk entries, kernel copy, 1 MiB blocks,
Rock Ridge, plain fsync), "after" the current writer.  Both write the same tree as
bench/media_bench.py, alternating with ``genisoimage -J -joliet-long -udf`` (with and without an
fsync of its output); best of N wall and CPU (user + system, children included) for each.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmforge.media.answer_iso import FileOnDisk, write_answer_iso

ROOT = Path(__file__).resolve().parent.parent

BEFORE_COMMIT = "26fa8d8"


def _load_before(work: Path, commit: str):  # type: ignore[no-untyped-def]
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:vmforge/media/answer_iso.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = work / "answer_iso_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("answer_iso_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["answer_iso_before"] = module
    spec.loader.exec_module(module)
    return module


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    commit = sys.argv[2] if len(sys.argv) > 2 else BEFORE_COMMIT
    work = Path(tempfile.mkdtemp(prefix="vmforge-bench-"))
    try:
        before = _load_before(work, commit)
        tree = work / "tree"
        sizes = {f"packages/big{n}.bin": 110 * 1024**2 for n in range(4)}
        sizes.update({f"$WinPEDriver$/drv{n // 100:02d}/file{n:04d}.inf": 8 * 1024 + n for n in range(3000)})
        for name, size in sizes.items():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(os.urandom(size))
        on_disk = {
            name: FileOnDisk(tree / name, hashlib.sha256((tree / name).read_bytes()).hexdigest(), size)
            for name, size in sizes.items()
        }
        out = work / "out.iso"

        def genisoimage(fsync: bool) -> None:
            subprocess.run(["genisoimage", "-quiet", "-J", "-joliet-long", "-udf", "-o", str(out), str(tree)],
                           check=True, capture_output=True)  # fmt: skip
            if fsync:
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

        def before_files() -> dict[str, object]:
            if hasattr(before, "FileOnDisk"):  # the writer already took files by path
                return {n: before.FileOnDisk(f.path, f.sha256, f.size) for n, f in on_disk.items()}
            return {n: (tree / n).read_bytes() for n in sizes}

        runs = {
            "genisoimage": lambda: genisoimage(False),
            "genisoimage + fsync": lambda: genisoimage(True),
            f"before ({commit})": lambda: before.write_answer_iso(out, before_files()),
            "after (this tree)": lambda: write_answer_iso(out, on_disk),
        }
        best = {name: [float("inf"), float("inf")] for name in runs}
        for _ in range(repeats):
            for name, run in runs.items():
                wall, cpu = time.perf_counter(), _cpu()
                run()
                best[name][0] = min(best[name][0], time.perf_counter() - wall)
                best[name][1] = min(best[name][1], _cpu() - cpu)
        gen_wall, gen_cpu = best["genisoimage"]
        sync_wall = best["genisoimage + fsync"][0]
        print(f"load average {os.getloadavg()[0]:.1f}; best of {repeats}, {len(sizes)} files, 468 MiB")
        for name, (wall, cpu) in best.items():
            print(f"{name:26s} wall {wall:5.2f} s ({wall / gen_wall:.2f}x; {wall / sync_wall:.2f}x vs + fsync)  "
                  f"cpu {cpu:5.2f} s ({cpu / gen_cpu:.2f}x)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
