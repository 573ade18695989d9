"""Run every benchmark in bench/ one after another (``make bench``); not part of CI.

Each benchmark reports ratios against a baseline it measures in the same run (memcpy,
genisoimage, a local copy), never absolute timings, because machines here are noisy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == "run.py":
            continue
        print(f"==> {script.name}", file=sys.stderr, flush=True)
        failed |= subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
