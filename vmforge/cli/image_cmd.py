"""``vmforge image build|capture|list|rm|prune``, ``vmforge clone``, ``vmforge reprovision``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeCommand, VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.cli.snapshot_cmd import connect_option, open_conn
from vmforge.domain.review import plan_on_host
from vmforge.images.build import build_image
from vmforge.images.capture import capture_image
from vmforge.images.clone import agent_session, clone_vm
from vmforge.images.probe_boot import probe_boot_plan
from vmforge.images.reprovision import check_drift, raise_on_drift, reprovision
from vmforge.images.store import find_image, list_images, prune_images, remove_image
from vmforge.libvirt_conn import connect
from vmforge.plan import Plan
from vmforge.probe.image import ensure_probe_image
from vmforge.spec import OsKind, Overrides, Spec, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


def vm_plan(conn: Any, spec: Spec) -> Plan:
    """The plan a clone is defined from; probe clones boot the probe guest with their disk."""
    plan = plan_on_host(conn, spec)
    if spec.os is OsKind.PROBE:
        plan = probe_boot_plan(plan, ensure_probe_image())
    return plan


@click.group("image", cls=VmforgeGroup)
def image() -> None:
    """Golden images: read-only base disks (+ NVRAM and TPM state) that linked clones stand on.

    \b
      vmforge image build --spec golden.toml   create + generalize + capture (cached by input hash)
      vmforge image capture NAME               a VM's disk, NVRAM and TPM state as an image
      vmforge clone IMAGE NAME                 a linked clone, booted and specialized
      vmforge image list | rm IMAGE | prune
    """


@image.command("build")
@spec_options
@json_option
def build_cmd(spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Build the spec's golden image, or find it: unchanged inputs boot nothing."""
    spec, _source = load_spec(spec_path, Overrides(sets))
    conn = connect(spec.vm.connect)
    try:
        result = build_image(conn, spec, reporter=Reporter())
    finally:
        conn.close()
    if as_json:
        print_json(result.to_data())
        return
    state = "cached" if result.cache_hit else "built"
    echo(f"image {result.image.id[:16]} ({result.image.label}) {state} in {result.seconds:.1f}s")


@image.command("capture")
@click.argument("name")
@click.option("--label", default=None, help="A name for the image (default: NAME).")
@click.option("--no-generalize", is_flag=True, help="Capture the shut-off VM as it is (no sysprep / identity removal).")
@connect_option
@json_option
def capture_cmd(  # noqa: PLR0917 - click passes every option
    name: str,
    label: str | None,
    no_generalize: bool,
    uri: str | None,
    spec_path: Path | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Turn VM NAME into an image: generalize it through its agent (it must run), wait until it
    powers off, then copy disk, NVRAM and TPM state into the store.  The VM itself stays."""
    vm_dir = VmDir(name)
    with open_conn(uri, spec_path, sets) as conn, vm_dir.lock(), Reporter().step(f"capturing {name}"):
        guest = None if no_generalize else agent_session(str(conn.getURI()), name)
        result = capture_image(conn, name, label=label, guest=guest)
    if as_json:
        print_json(result.to_data())
    else:
        echo(f"image {result.id[:16]} ({result.label}) captured from {name}")


@image.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the images in the store."""
    images = list_images()
    if as_json:
        print_json({"images": [i.to_data() for i in images]})
        return
    if not images:
        echo("no images")
    for item in images:
        gen = "generalized" if item.generalized else "as captured"
        echo(f"{item.id[:16]}  {item.label:<24} {item.os:<8} {gen:<12} {item.created}  {item.key}")


@image.command("rm")
@click.argument("ref", metavar="IMAGE")
@connect_option
@json_option
def rm_cmd(ref: str, uri: str | None, spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Remove IMAGE (id, id prefix or label); refused while a clone stands on it."""
    with open_conn(uri, spec_path, sets) as conn:
        removed = remove_image(conn, find_image(ref))
    if as_json:
        print_json({"removed": removed})
    else:
        for item in removed:
            echo(f"removed  {item}")


@image.command("prune")
@connect_option
@json_option
def prune_cmd(uri: str | None, spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Remove every image no clone stands on."""
    with open_conn(uri, spec_path, sets) as conn:
        removed, kept = prune_images(conn)
    if as_json:
        print_json({"removed": removed, "kept": kept})
        return
    for item in removed:
        echo(f"removed  {item}")
    for item in kept:
        echo(f"kept     {item}")


@click.command("clone", cls=VmforgeCommand)
@click.argument("ref", metavar="IMAGE")
@click.argument("name")
@click.option("--no-start", is_flag=True, help="Define the clone but do not boot it.")
@spec_options
@json_option
def clone(  # noqa: PLR0917 - click passes every option
    ref: str, name: str, no_start: bool, spec_path: Path | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Clone IMAGE as VM NAME: a qcow2 overlay on the base, own NVRAM/TPM copies, own identity;
    booted, specialized, and the spec's packages and guards applied (unless --no-start).  The
    spec gives the clone's hardware and packages."""
    found = find_image(ref)
    spec, _source = load_spec(spec_path, Overrides(sets, {"vm.name": name, "disk.pool": found.pool}))
    vm_dir = VmDir(name)
    conn = connect(spec.vm.connect)
    try:
        with vm_dir.lock():
            guest = None if no_start else agent_session(spec.vm.connect, name)
            report = clone_vm(
                conn, found, vm_plan(conn, spec), vm_dir=vm_dir, guest=guest, reporter=Reporter(),
                ready_timeout=spec.timeouts.agent, spec=spec,
            )  # fmt: skip
    finally:
        conn.close()
    if as_json:
        print_json(report.to_data())
        return
    ready = f", ready in {report.ready_seconds:.0f}s" if report.ready_seconds is not None else ""
    echo(f"{name} cloned from {found.label} ({found.id[:16]}){ready}")
    for note in report.notes:
        echo(f"note: {note}")


@click.command("reprovision", cls=VmforgeCommand)
@click.argument("name")
@click.option("--from", "source", type=click.Choice(["snapshot", "image"]), default=None,
              help="Where to come back from (default: the known-good snapshot, else the image).")  # fmt: skip
@click.option("--check", is_flag=True, help="Only report drift (exit 3 when there is some).")
@click.option("--no-start", is_flag=True, help="Leave it shut off (packages and guards are then not re-applied).")
@spec_options
@json_option
def reprovision_cmd(  # noqa: PLR0917 - click passes every option
    name: str,
    source: str | None,
    check: bool,
    no_start: bool,
    spec_path: Path | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Put VM NAME back: revert it to its known-good snapshot or clone it again from its image,
    start it and re-apply the spec's packages and guards.  With --check, report drift instead
    (domain definition, packages, guards; non-interactive, exit 3 on drift)."""
    spec, _source = load_spec(spec_path, Overrides(sets, {"vm.name": name}))
    vm_dir = VmDir(name)
    conn = connect(spec.vm.connect)
    try:
        with vm_dir.lock():
            plan = vm_plan(conn, spec)
            guest = agent_session(spec.vm.connect, name)
            if check:
                report = check_drift(conn, name, plan, vm_dir, guest, spec=spec)
                raise_on_drift(report)
                result: dict[str, Any] = report.to_data()
            else:
                result = reprovision(
                    conn, name, plan, vm_dir, source=source, reporter=Reporter(),
                    guest=None if no_start else guest, ready_timeout=spec.timeouts.agent, spec=spec,
                )  # fmt: skip
    finally:
        conn.close()
    if as_json:
        print_json(result)
    elif check:
        echo(f"{name}: no drift ({', '.join(result['checked'])} checked)")
    else:
        echo(f"{name} reprovisioned from its {result['from']}")
