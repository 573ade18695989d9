"""The top-level group imports a command's module only when that command is used."""

from __future__ import annotations

import subprocess
import sys

import click

from vmforge.cli import COMMANDS, cli


def test_every_registered_command_resolves_under_its_own_name() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.name == name, f"{name} maps to a command named {command.name}"
    assert cli.list_commands(ctx) == sorted(COMMANDS)


def test_unknown_command_is_a_usage_error() -> None:
    assert cli.get_command(click.Context(cli), "no-such-command") is None


def test_a_small_command_does_not_import_the_heavy_channels() -> None:
    # `vmforge list` needs neither SSH nor WinRM nor the create pipeline; before the lazy group
    # every command paid for importing all of them.
    code = (
        "import sys\n"
        "from vmforge.cli import main\n"
        "try:\n"
        "    main(['list', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('paramiko', 'winrm', 'vmforge.create.pipeline', 'vmforge.doctor.runner')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    heavy = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], heavy
