"""The ``vmforge`` command line: a thin layer over the library.

Only this package maps errors to exit codes: 0 ok, 1 runtime failure, 2 usage or spec error,
3 a check found problems.  With ``--json`` exactly one JSON document reaches stdout, errors
included as ``{"error": {"message", "hint", "exit_code"}}``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from vmforge import __version__
from vmforge.cli.answer_cmd import answer
from vmforge.cli.channel_cmd import channel
from vmforge.cli.common import VmforgeGroup, print_json
from vmforge.cli.create_cmd import create
from vmforge.cli.destroy_cmd import destroy
from vmforge.cli.doctor_cmd import doctor
from vmforge.cli.domain_cmd import domain
from vmforge.cli.gpu_cmd import gpu
from vmforge.cli.guards_cmd import guards
from vmforge.cli.guest_cmd import guest
from vmforge.cli.image_cmd import clone, image, reprovision_cmd
from vmforge.cli.iso_cmd import iso
from vmforge.cli.media_cmd import media
from vmforge.cli.packages_cmd import packages
from vmforge.cli.probe_cmd import probe
from vmforge.cli.remote_cmd import remote
from vmforge.cli.snapshot_cmd import revert_cmd, snapshot
from vmforge.cli.spec_cmd import spec
from vmforge.cli.vm_cmd import list_vms
from vmforge.cli.vmops_cmd import EVERYDAY
from vmforge.errors import VmforgeError
from vmforge.logs import redact, setup_logging

EXIT_INTERRUPTED = 130


@click.group(cls=VmforgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


cli.add_command(spec)
cli.add_command(list_vms)
cli.add_command(iso)
cli.add_command(answer)
cli.add_command(media)
cli.add_command(domain)
cli.add_command(destroy)
cli.add_command(gpu)
cli.add_command(channel)
cli.add_command(doctor)
cli.add_command(remote)
cli.add_command(guest)
cli.add_command(packages)
cli.add_command(guards)
cli.add_command(probe)
cli.add_command(create)
for _command in EVERYDAY:
    cli.add_command(_command)
cli.add_command(snapshot)
cli.add_command(revert_cmd)
cli.add_command(image)
cli.add_command(clone)
cli.add_command(reprovision_cmd)


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


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    debug = "--debug" in args or os.environ.get("VMFORGE_DEBUG") == "1"
    setup_logging(debug)
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
