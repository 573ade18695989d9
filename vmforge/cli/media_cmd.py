"""``vmforge media``: build the answer media for a spec."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.media.build import build_media
from vmforge.spec import Overrides, load_spec
from vmforge.ui import Reporter


@click.group(cls=VmforgeGroup)
def media() -> None:
    """Build the answer media (autounattend.xml, WinPE drivers, bootstrap script)."""


@media.command("build")
@spec_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the ISO here (default: the VM's media folder, reused while its inputs are unchanged).",
)
@json_option
def build(spec_path: Path | None, sets: tuple[str, ...], output: Path | None, as_json: bool) -> None:
    """Inspect windows.iso, render and validate the answer file, and write the answer ISO."""
    spec, _source = load_spec(spec_path, Overrides(sets))
    prepared, result = build_media(spec, reporter=Reporter(), output=output)
    data = {
        "path": str(result.path),
        "inputs_sha256": result.inputs_sha256,
        "reused": result.reused,
        "files": list(result.files),
        "template": prepared.answer.template,
        "image": {"index": prepared.answer.image.index, "name": prepared.answer.image.name},
        "warnings": [w.to_data() for w in prepared.report.warnings],
    }
    if as_json:
        print_json(data)
    else:
        state = "reused" if result.reused else "wrote"
        echo(f"{state} {result.path} ({len(result.files)} files, image {prepared.answer.image.index})")
