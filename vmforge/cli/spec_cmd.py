"""``vmforge spec``: write, check and show specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vmforge import tomlout
from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.errors import SpecError, UsageError
from vmforge.media.iso_inspect import inspect_spec_iso
from vmforge.plan import resolve_plan
from vmforge.spec import DEFAULT_SPEC_FILE, OsKind, Overrides, check_files, load_spec
from vmforge.templating import render_template


@click.group(cls=VmforgeGroup)
def spec() -> None:
    """Write, check and show vmforge spec files (TOML)."""


@spec.command("init")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_SPEC_FILE)
@click.option("--name", default="win11", show_default=True, help="vm.name in the new spec.")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@json_option
def init(path: Path, name: str, force: bool, as_json: bool) -> None:
    """Write a commented starter spec to PATH (default ./vmforge.toml)."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it, or pick another PATH")
    text = render_template("spec/starter.toml.j2", name=name, path_name=path.name)
    # The starter must itself be a valid spec: check before writing anything.
    load_spec(None, Overrides(fields={"vm.name": name}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if as_json:
        print_json({"path": str(path)})
    else:
        echo(f"wrote {path}; check it with: vmforge spec validate --spec {path}")


@spec.command("validate")
@spec_options
@json_option
def validate(spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Check a spec: syntax, types, unknown keys, and the files it names."""
    loaded, source = load_spec(spec_path, Overrides(sets), require_file=True)
    problems = check_files(loaded)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SpecError(
            f"{source}: {problems[0]}{more}",
            hint="fix the path (relative paths are relative to the spec file)",
            problems=[f"{source}: {p}" for p in problems],
        )
    if as_json:
        print_json({"valid": True, "source": str(source), "spec_hash": loaded.digest()})
    else:
        echo(f"{source}: valid (spec version {loaded.version}, VM '{loaded.vm.name}')")


@spec.command("show")
@spec_options
@click.option("--resolved", is_flag=True, help="Also resolve every 'auto' into the plan.")
@json_option
def show(spec_path: Path | None, sets: tuple[str, ...], resolved: bool, as_json: bool) -> None:
    """Print the spec with defaults filled in (secrets masked); --resolved adds the plan."""
    loaded, source = load_spec(spec_path, Overrides(sets), require_file=False)
    document: dict[str, Any] = {"source": str(source) if source else None, "spec": loaded.to_data()}
    if resolved:
        media = None
        if loaded.windows.iso is not None and loaded.os is OsKind.WINDOWS:
            media = inspect_spec_iso(loaded.windows.iso, loaded.windows.iso_sha256).media_facts()
        document["plan"] = resolve_plan(loaded, media=media).to_data()
    if as_json:
        print_json(document)
        return
    echo(f"# spec from {document['source'] or 'defaults and command line'}")
    echo(tomlout.dumps(document["spec"]))
    if resolved:
        echo("# resolved plan")
        echo(tomlout.dumps({"plan": document["plan"]}))
