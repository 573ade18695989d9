"""The probe's shell emitter and vmforge.media.phases agree on the grammar (run for real with busybox sh).

Both writers get the same inputs; both must accept or refuse together, print the same bytes, and
the one parser must read back exactly the fields that went in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmforge.media.phases import PhaseMarker, format_marker, parse_line
from vmforge.resources import DataFolder, data_dir

EMITTER = data_dir(DataFolder.TEMPLATES) / "probe" / "vmforge-phase"
CASES = [
    (["pe-start"], True),
    (["pe-start", "build=22631", "arch=amd64"], True),
    (["probe-media", "cds=2", "mounted=1"], True),
    (["postinstall-done", "path=C:\\Windows\\Temp\\x.log"], True),
    (["postinstall-failed", "reason=disk full (0x70)"], True),  # quoted on the wire
    (["probe-init", "kernel=6.1.0-28-amd64"], True),
    (["pe-start", "a=b=c"], True),  # the value is 'b=c'
    (["pe-start", "a_b=1"], True),
    (["PE-Start"], False),
    (["9start"], False),
    (["pe_start"], False),
    (["x" * 65], False),
    (["pe-start", "novalue="], False),
    (["pe-start", "=value"], False),
    (["pe-start", "has space=1"], False),
    (["pe-start", "aB=1"], False),
    (["pe-start", "a.b=1"], False),
    (["pe-start", "a-b=1"], False),
    (["pe-start", 'k=say "hi"'], False),
    (["pe-start", "k=caf\u00e9"], False),
    (["pe-start", "k=tab\there"], False),
    (["pe-start", "k=" + "v" * 513], False),
    (["pe-start", "novalue"], False),
]


def run_emitter(args: list[str], console: Path) -> int:
    busybox = shutil.which("busybox")
    assert busybox, "busybox is missing: install Debian's busybox-static (scripts/setup-host)"
    env = {"VMFORGE_PHASE_CONSOLE": str(console), "PATH": "/usr/bin:/bin"}
    return subprocess.run([busybox, "sh", str(EMITTER), *args], env=env, capture_output=True, check=False).returncode


def split_fields(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args[1:])


def python_line(args: list[str]) -> str | None:
    if not all("=" in a for a in args[1:]):
        return None  # a Python caller cannot even pass a field without '='
    try:
        return format_marker(args[0], **split_fields(args))
    except ValueError:
        return None


@pytest.mark.parametrize(("args", "valid"), CASES)
def test_shell_and_python_writers_agree_with_the_parser(args: list[str], valid: bool, tmp_path: Path) -> None:
    console = tmp_path / "console"
    console.write_text("")
    rc = run_emitter(args, console)
    expected = python_line(args)
    assert (rc == 0) is valid
    assert (expected is not None) is valid
    if valid:
        assert expected is not None
        assert console.read_bytes() == (expected + "\n").encode()
        assert parse_line(console.read_bytes()) == PhaseMarker(args[0], split_fields(args))
    else:
        assert console.read_text() == ""
