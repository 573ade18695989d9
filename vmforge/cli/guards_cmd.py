"""``vmforge guard enforce|check NAME``: the display-settings guards of a running VM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vmforge import guards as guards_lib
from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.errors import ChecksFailed
from vmforge.guards.model import GuardReport, ItemState
from vmforge.guards.runner import guards_plan
from vmforge.guest.reach import reach_guest
from vmforge.guest.session import Guest
from vmforge.media.iso_inspect import inspect_spec_iso
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import Overrides, Spec, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

_LABEL = {"ok": "OK", "drifted": "DRIFTED", "missing": "MISSING", "unverified": "UNVERIFIED"}


def _load(name: str, spec_path: Path | None, sets: tuple[str, ...]) -> tuple[Spec, Plan]:
    spec, _ = load_spec(spec_path, Overrides(sets, {"vm.name": name}))
    media = None
    if spec.windows.iso is not None and spec.windows.family.value == "auto":
        media = inspect_spec_iso(spec.windows.iso, spec.windows.iso_sha256).media_facts()
    plan = resolve_plan(spec, media=media)
    guards_plan(plan)  # no guard profile: say so before reaching for the guest
    return spec, plan


def _guest(spec: Spec, vmdir: VmDir, uri: str | None) -> Guest:
    """The first of remote.channels that answers: the guest agent, or WinRM/SSH."""
    target, origin = (uri, "--connect") if uri else (spec.vm.connect, "vm.connect")
    return reach_guest(spec, vmdir, via=None, uri=target, origin=origin).guest


def render(report: GuardReport) -> None:
    for result in report.results:
        echo(f"{_LABEL[result.status.value]:10} {result.guard:18} {result.summary}")
        for item in result.drift():
            found = "absent" if item.state is ItemState.ABSENT else repr(item.found)
            if item.state is ItemState.UNKNOWN:
                found = f"unknown ({item.note})"
            echo(f"{'':29}· {item.id}: expected {item.expected!r}, found {found}")
        for changed in result.changed:
            echo(f"{'':29}changed: {changed}")
        for error in result.errors:
            echo(f"{'':29}guest error: {error}")
        if result.raw_output:
            echo(f"{'':29}raw output: {result.raw_output}")
    counts = report.counts()
    echo("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()))


def _finish(report: GuardReport, as_json: bool) -> None:
    data: dict[str, Any] = report.to_data()
    if as_json and report.ok:
        print_json(data)
    elif not as_json:
        render(report)
    if not report.ok:
        names = ", ".join(f"{r.guard} ({r.status.value})" for r in report.not_ok())
        raise ChecksFailed(
            f"guards not ok after {report.operation}: {names}",
            hint="the report names what differs; 'vmforge guard enforce NAME' re-applies what drifted, "
            "'unverified' needs a logged-on desktop user or a guest that answers",
            report=data,
        )


def _common(func: Any) -> Any:
    func = click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")(func)
    func = json_option(func)
    func = spec_options(func)
    return click.argument("name")(func)


@click.group("guard", cls=VmforgeGroup)
def guards() -> None:
    """Display-settings guards: enforce them in a VM, or check them (exit 3 on drift)."""


@guards.command("enforce")
@_common
def enforce_cmd(*, name: str, spec_path: Path | None, sets: tuple[str, ...], uri: str | None, as_json: bool) -> None:
    """Apply the spec's guard profile in VM NAME: only what drifted changes, and the report
    lists what changed and what each guard read back afterwards (exit 3 if any is not ok)."""
    spec, plan = _load(name, spec_path, sets)
    vmdir = VmDir(spec.vm.name)
    reporter = Reporter()
    with vmdir.lock():
        guest = _guest(spec, vmdir, uri)
        with reporter.step(f"Enforcing the guards of {spec.vm.name}"):
            report = guards_lib.enforce(spec, plan, vmdir, guest, progress=reporter.info)
    _finish(report, as_json)


@guards.command("check")
@_common
def check_cmd(*, name: str, spec_path: Path | None, sets: tuple[str, ...], uri: str | None, as_json: bool) -> None:
    """Read the guards of VM NAME back and compare them with the spec: each is ok, drifted,
    missing, or unverified (could not be read back).  Exit 3 when any is not ok."""
    spec, plan = _load(name, spec_path, sets)
    vmdir = VmDir(spec.vm.name)
    guest = _guest(spec, vmdir, uri)
    report = guards_lib.check(spec, plan, vmdir, guest, progress=Reporter().info)
    _finish(report, as_json)
