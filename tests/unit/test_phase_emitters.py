"""The probe's shell emitter and vmforge.guest.phases agree on the grammar (run for real with busybox sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmforge.guest.phases import format_phase, parse_line
from vmforge.resources import DataFolder, data_dir

EMITTER = data_dir(DataFolder.TEMPLATES) / "probe" / "vmforge-phase"
CASES = [
    (["pe-start"], True),
    (["pe-start", "build=22631", "arch=amd64"], True),
    (["probe-media", "cds=2", "mounted=1"], True),
    (["postinstall-done", "path=C:\\Windows\\Temp\\x.log"], True),
    (["PE-Start"], False),
    (["9start"], False),
    (["pe_start"], False),
    (["pe-start", "novalue="], False),
    (["pe-start", "=value"], False),
    (["pe-start", "a=b=c"], False),
    (["pe-start", "has space=1"], False),
    (["pe-start", "k=two words"], False),
    (["pe-start", "aB=1"], False),
    (["pe-start", "a.b_c-d=1"], True),
    (["pe-start", "novalue"], False),
]


def run_emitter(args: list[str], console: Path) -> int:
    busybox = shutil.which("busybox")
    assert busybox, "busybox is missing: install Debian's busybox-static (scripts/setup-host)"
    env = {"VMFORGE_PHASE_CONSOLE": str(console), "PATH": "/usr/bin:/bin"}
    return subprocess.run([busybox, "sh", str(EMITTER), *args], env=env, capture_output=True, check=False).returncode


def python_accepts(args: list[str]) -> bool:
    fields = dict(a.split("=", 1) if "=" in a else (a, "") for a in args[1:])
    try:
        format_phase(args[0], **fields)
    except ValueError:
        return False
    return all("=" in a for a in args[1:])


@pytest.mark.parametrize(("args", "valid"), CASES)
def test_shell_and_python_emitters_accept_the_same_markers(args: list[str], valid: bool, tmp_path: Path) -> None:
    console = tmp_path / "console"
    console.write_text("")
    rc = run_emitter(args, console)
    assert (rc == 0) is valid
    assert python_accepts(args) is valid
    if valid:
        line = console.read_text()
        assert line == format_phase(args[0], **dict(a.split("=", 1) for a in args[1:])) + "\n"
        parsed = parse_line(line)
        assert parsed == (args[0], dict(a.split("=", 1) for a in args[1:]))
    else:
        assert console.read_text() == ""
