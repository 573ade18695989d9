"""The ``vmforge`` command line: a thin layer over the library.

Only this package maps errors to exit codes: 0 ok, 1 runtime failure, 2 usage or spec error,
3 a check found problems.  With ``--json`` exactly one JSON document reaches stdout, errors
included as ``{"error": {"message", "hint", "exit_code"}}``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from vmforge import __version__
from vmforge.cli.common import VmforgeGroup, print_json
from vmforge.errors import VmforgeError
from vmforge.logs import redact, setup_logging

EXIT_INTERRUPTED = 130

# Command name -> "module:attribute" under vmforge.cli.  Modules are imported only when their
# command runs (or when the top-level --help lists them): importing every command eagerly took
# seconds, mostly pydantic, paramiko and pywinrm that a given command may never need.
COMMANDS: dict[str, str] = {
    "spec": "spec_cmd:spec",
    "list": "vm_cmd:list_vms",
    "iso": "iso_cmd:iso",
    "answer": "answer_cmd:answer",
    "media": "media_cmd:media",
    "domain": "domain_cmd:domain",
    "destroy": "destroy_cmd:destroy",
    "gpu": "gpu_cmd:gpu",
    "channel": "channel_cmd:channel",
    "doctor": "doctor_cmd:doctor",
    "remote": "remote_cmd:remote",
    "guest": "guest_cmd:guest",
    "packages": "packages_cmd:packages",
    "guard": "guards_cmd:guards",
    "probe": "probe_cmd:probe",
    "create": "create_cmd:create",
    "status": "vmops_cmd:status",
    "start": "vmops_cmd:start_cmd",
    "stop": "vmops_cmd:stop_cmd",
    "reboot": "vmops_cmd:reboot_cmd",
    "console": "vmops_cmd:console_cmd",
    "logs": "vmops_cmd:logs_cmd",
    "creds": "vmops_cmd:creds_cmd",
    "snapshot": "snapshot_cmd:snapshot",
    "revert": "snapshot_cmd:revert_cmd",
    "image": "image_cmd:image",
    "clone": "image_cmd:clone",
    "reprovision": "image_cmd:reprovision_cmd",
}


class LazyGroup(VmforgeGroup):
    """The top-level group: resolves a command by importing only its module."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(f"vmforge.cli.{module_name}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vmforge")
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
def cli(debug: bool) -> None:
    """Build unattended, locked-down Windows VMs on QEMU/KVM through libvirt.

    \b
    Start here:
      vmforge spec init              write a commented vmforge.toml
      vmforge spec validate          check it
      vmforge spec show --resolved   see every 'auto' resolved

    Exit codes: 0 ok, 1 runtime failure, 2 usage or spec error, 3 a check found problems.
    """
    if debug:
        setup_logging(debug=True)


def _report(message: str, hint: str | None, code: int, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    message = redact(message)
    hint = redact(hint) if hint else hint
    if as_json:
        error: dict[str, Any] = {"message": message, "hint": hint, "exit_code": code}
        error.update(extra or {})
        print_json({"error": error})
    else:
        sys.stderr.write(f"error: {message}\n")
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
        sys.stderr.flush()


def _terminated(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt  # unwind like Ctrl-C: every finally/cleanup runs (probe domains, locks)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    debug = "--debug" in args or os.environ.get("VMFORGE_DEBUG") == "1"
    setup_logging(debug)
    signal.signal(signal.SIGTERM, _terminated)  # `kill`, timeouts, CI cancelling a job
    code = 0
    try:
        result = cli.main(args=args, prog_name="vmforge", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = 2 if isinstance(exc, click.UsageError) else 1
        ctx = getattr(exc, "ctx", None)
        hint = f"run '{ctx.command_path} --help'" if ctx is not None else "run 'vmforge --help'"
        _report(exc.format_message(), hint, code, as_json)
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
        _report("interrupted", "re-run the same command to continue where it stopped", code, as_json)
    except VmforgeError as exc:
        code = exc.exit_code
        if debug:
            traceback.print_exc()
        data = exc.to_json()
        extra = {k: v for k, v in data.items() if k not in ("message", "hint", "exit_code")}
        _report(exc.message, exc.hint, code, as_json, extra)
    except Exception as exc:
        code = 1
        if debug:
            traceback.print_exc()
        _report(
            f"internal error: {type(exc).__name__}: {exc}",
            "re-run with --debug for the traceback, and report it",
            code,
            as_json,
        )
    sys.exit(code)
