"""``vmforge iso``: look inside Windows installer ISOs."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json
from vmforge.media.family import image_family
from vmforge.media.iso_inspect import IsoInspection, inspect_spec_iso


@click.group(cls=VmforgeGroup)
def iso() -> None:
    """Inspect Windows installer ISOs."""


@iso.command("inspect")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sha256", "hash_iso", is_flag=True, help="Also compute the ISO's sha256 (cached).")
@click.option("--expect-sha256", default=None, metavar="HEX", help="Fail unless the ISO has this sha256.")
@json_option
def inspect(path: Path, hash_iso: bool, expect_sha256: str | None, as_json: bool) -> None:
    """Show the images in an installer ISO: editions, architectures, builds, family, boot records.

    Reads only the ISO's directories and the WIM header and XML metadata: fast on any size.
    """
    result = inspect_spec_iso(path, expect_sha256, hash_iso=hash_iso)
    if as_json:
        print_json(result.to_data())
        return
    _print_human(result)


def _print_human(result: IsoInspection) -> None:
    echo(f"{result.path}")
    echo(f"  volume id : {result.volume_id}")
    echo(f"  family    : Windows {result.family.value}")
    echo(f"  boot      : {', '.join(result.boot) or 'not bootable'}")
    echo(f"  images in : {result.install_file} ({result.install_format})")
    if result.iso_sha256:
        echo(f"  sha256    : {result.iso_sha256}")
    echo("")
    echo(f"  {'index':>5}  {'arch':<6} {'build':<16} {'type':<12} {'edition id':<22} name")
    for image in result.images:
        family = image_family(image)
        echo(
            f"  {image.index:>5}  {image.arch or '?':<6} {image.version or '?':<16} "
            f"{image.installation_type or '?':<12} {image.edition_id or '?':<22} {image.name}"
            + (f"  [{', '.join(image.languages)}]" if image.languages else "")
            + ("" if family else "  (unsupported)")
        )
