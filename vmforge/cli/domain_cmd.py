"""``vmforge domain``: look at the libvirt domain vmforge makes for a spec."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import VmforgeGroup, json_option, print_json, spec_options
from vmforge.domain.review import plan_on_host, review_xml
from vmforge.domain.shapes import Shape
from vmforge.libvirt_conn import connect
from vmforge.spec import Overrides, load_spec


@click.group(cls=VmforgeGroup)
def domain() -> None:
    """Show the libvirt domain vmforge builds from a spec."""


@domain.command("xml")
@spec_options
@click.option(
    "--shape",
    "--phase",
    "shape",
    type=click.Choice([s.value for s in Shape]),
    default=Shape.INSTALL.value,
    show_default=True,
    help="install (installer CD boots first), post-install (disk boots, media attached) or final (media removed).",
)
@json_option
def xml(spec_path: Path | None, sets: tuple[str, ...], shape: str, as_json: bool) -> None:
    """Print the domain XML for the spec, as it would be defined (nothing is created).

    Reads the libvirt host's domain capabilities (vm.connect) to pick the firmware.
    """
    loaded, _ = load_spec(spec_path, Overrides(sets))
    conn = connect(loaded.vm.connect)
    try:
        plan = plan_on_host(conn, loaded)
        text = review_xml(conn, plan, Shape(shape))
    finally:
        conn.close()
    if as_json:
        print_json({"name": plan.name, "shape": shape, "connect": plan.connect, "xml": text})
    else:
        click.echo(text, nl=False)
