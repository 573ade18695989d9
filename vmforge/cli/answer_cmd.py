"""``vmforge answer``: render and validate answer files (autounattend.xml)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.credentials import admin_password
from vmforge.media.build import prepare_answer
from vmforge.media.iso_inspect import inspect_iso
from vmforge.media.validate import AnswerFileInvalid, Reference, validate_file
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir, write_atomic


@click.group(cls=VmforgeGroup)
def answer() -> None:
    """Render and validate Windows answer files."""


@answer.command("render")
@spec_options
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write here.")
@json_option
def render(spec_path: Path | None, sets: tuple[str, ...], output: Path | None, as_json: bool) -> None:
    """Render the spec's autounattend.xml (checked against windows.iso) to stdout or -o FILE.

    The administrator password appears only in Setup's obfuscated form (base64, not secret).
    """
    spec, _source = load_spec(spec_path, Overrides(sets))
    password = admin_password(spec, VmDir(spec.vm.name))
    prepared = prepare_answer(spec, password)
    text = prepared.answer.text
    if output is not None:
        write_atomic(output, text.encode("ascii"), 0o600)
    if as_json:
        print_json(
            {
                "output": str(output) if output else None,
                "template": prepared.answer.template,
                "image": {"index": prepared.answer.image.index, "name": prepared.answer.image.name},
                "hardware_bypass": prepared.answer.hardware_bypass,
                "validation": prepared.report.to_data(),
                **({} if output else {"answer": text}),
            }
        )
    elif output is None:
        sys.stdout.write(text)
    else:
        echo(f"wrote {output} ({prepared.answer.template}, image {prepared.answer.image.index})")


@answer.command("validate")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--iso", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also check against this ISO."
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder with newer Component.json, settings.json and autounattend.xsd (default: vmforge's own data).",
)
@json_option
def validate(path: Path, iso: Path | None, reference: Path | None, as_json: bool) -> None:
    """Check an answer file; errors (exit 3) predict a failing or interactive Setup, warnings may not."""
    inspection = inspect_iso(iso) if iso is not None else None
    ref = Reference.load(reference) if reference is not None else None
    report = validate_file(path, inspection, ref)
    if report.errors:
        raise AnswerFileInvalid(
            f"{path}: {len(report.errors)} error(s), {len(report.warnings)} warning(s); first: {report.errors[0]}",
            hint="fix the errors named (XPath and what to do are given for each)",
            report=report,
        )
    if as_json:
        print_json(report.to_data())
        return
    for finding in report.findings:
        echo(str(finding))
    echo(f"{path}: valid ({len(report.warnings)} warning(s))")
