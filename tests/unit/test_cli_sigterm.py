"""SIGTERM unwinds a command like Ctrl-C: its cleanups run and it exits 130 with one line."""

from __future__ import annotations

import signal
import subprocess
import sys

CODE = """
import time
import click
from vmforge import cli

@click.command("sleepy")
def sleepy() -> None:
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        print("cleaned up", flush=True)

cli.cli.add_command(sleepy)
cli.main(["sleepy"])
"""


def test_sigterm_runs_the_cleanups_and_exits_130() -> None:
    proc = subprocess.Popen([sys.executable, "-c", CODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert out.strip() == "cleaned up"
    assert err.strip().startswith("error: interrupted") and "Traceback" not in err
