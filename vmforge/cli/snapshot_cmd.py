"""``vmforge snapshot NAME [LABEL]``, ``vmforge snapshot list NAME``, ``vmforge revert NAME LABEL``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeCommand, VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.images.snapshot import known_good, list_snapshots, revert, take_snapshot
from vmforge.libvirt_conn import connect
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


def connect_option(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")(func)
    return spec_options(func)


@contextlib.contextmanager
def open_conn(uri: str | None, spec_path: Path | None, sets: tuple[str, ...]) -> Iterator[Any]:
    origin = "--connect"
    if uri is None:
        loaded, _ = load_spec(spec_path, Overrides(sets))
        uri, origin = loaded.vm.connect, "vm.connect"
    conn = connect(uri, origin)
    try:
        yield conn
    finally:
        conn.close()


class SnapshotGroup(VmforgeGroup):
    """``snapshot NAME [LABEL]`` takes one; ``snapshot list NAME`` lists them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["take", *args]
        return super().parse_args(ctx, args)


@click.group("snapshot", cls=SnapshotGroup)
def snapshot() -> None:
    """Offline snapshots of a shut-off VM: disk overlay, NVRAM and TPM state (UEFI + TPM safe).

    \b
      vmforge snapshot NAME [LABEL]      take one (LABEL defaults to the UTC time)
      vmforge snapshot list NAME         list them
      vmforge revert NAME LABEL          put disk, NVRAM and TPM state back
    """


@snapshot.command("take")
@click.argument("name")
@click.argument("label", required=False)
@click.option("--known-good", is_flag=True, help="Make it the snapshot 'vmforge reprovision' reverts to.")
@connect_option
@json_option
def take(  # noqa: PLR0917 - click passes every option
    name: str,
    label: str | None,
    known_good: bool,
    uri: str | None,
    spec_path: Path | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Snapshot shut-off VM NAME as LABEL."""
    vm_dir = VmDir(name)
    with open_conn(uri, spec_path, sets) as conn, vm_dir.lock(), Reporter().step(f"snapshot of {name}"):
        record = take_snapshot(conn, name, vm_dir, label, known_good_mark=known_good)
    if as_json:
        print_json(record.to_data())
    else:
        echo(f"snapshot {record.label} of {name} taken")


@snapshot.command("list")
@click.argument("name")
@json_option
def list_cmd(name: str, as_json: bool) -> None:
    """List VM NAME's snapshots (oldest first; * marks the known-good one)."""
    vm_dir = VmDir(name)
    records = list_snapshots(vm_dir)
    good = known_good(vm_dir)
    if as_json:
        print_json({"name": name, "known_good": good, "snapshots": [r.to_data() for r in records]})
        return
    if not records:
        echo(f"VM {name} has no snapshots")
    for record in records:
        mark = "*" if record.label == good else " "
        echo(f"{mark} {record.label:<24} {record.created}  {record.layer.name}")


@click.command("revert", cls=VmforgeCommand)
@click.argument("name")
@click.argument("label")
@connect_option
@json_option
def revert_cmd(  # noqa: PLR0917 - click passes every option
    name: str, label: str, uri: str | None, spec_path: Path | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Revert shut-off VM NAME to snapshot LABEL (disk, NVRAM and TPM state)."""
    vm_dir = VmDir(name)
    with open_conn(uri, spec_path, sets) as conn, vm_dir.lock(), Reporter().step(f"reverting {name} to {label}"):
        record = revert(conn, name, vm_dir, label)
    if as_json:
        print_json({"name": name, "reverted_to": record.to_data()})
    else:
        echo(f"{name} reverted to {label}")
