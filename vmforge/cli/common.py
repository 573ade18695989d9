"""Pieces every command shares: options, output, the error-to-exit-code contract."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from vmforge.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def _enable_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        setup_logging(debug=True)


class VmforgeCommand(click.Command):
    """Every command accepts --debug (tracebacks and debug logs), wherever it is written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_enable_debug,
                help="Show debug logs and tracebacks.",
            )
        )


class VmforgeGroup(click.Group):
    command_class = VmforgeCommand
    group_class = type  # subgroups are VmforgeGroups too


def json_option(func: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print exactly one JSON document on stdout (errors included).",
    )(func)


def spec_options(func: F) -> F:
    """--spec FILE and --set section.key=value."""
    func = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one spec field, e.g. --set vm.vcpus=4 (repeatable).",
    )(func)
    return click.option(
        "--spec",
        "spec_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Spec file (default: ./vmforge.toml).",
    )(func)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def echo(text: str = "") -> None:
    """Human results go to stdout (only when --json is off)."""
    click.echo(text)
