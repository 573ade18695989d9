"""``vmforge create NAME``: the whole job, resumable (vmforge/create/pipeline.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.create.pipeline import Create, CreateOptions, PlanChanged
from vmforge.errors import UsageError
from vmforge.libvirt_conn import connect
from vmforge.probe.specs import BUILTIN_SPECS
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


@click.command("create")
@click.argument("name", required=False)
@spec_options
@click.option("--builtin", type=click.Choice(sorted(BUILTIN_SPECS)), default=None, help="Use a built-in spec.")
@click.option("--iso", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Sets windows.iso.")
@click.option("--memory", default=None, help="Sets vm.memory (e.g. 8GiB).")
@click.option("--vcpus", type=int, default=None, help="Sets vm.vcpus.")
@click.option("--restart", is_flag=True, help="Destroy what earlier runs made for this VM and start over.")
@click.option("--force", is_flag=True, help="Continue although the plan changed since the create started.")
@json_option
def create(  # noqa: PLR0917 - click passes every option
    name: str | None,
    spec_path: Path | None,
    sets: tuple[str, ...],
    builtin: str | None,
    iso: Path | None,
    memory: str | None,
    vcpus: int | None,
    restart: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Create VM NAME from the spec: answer media, disk, domain, unattended install followed by
    its phase markers, post-install, guest agent, packages, guards, verification, final shape.

    Every step is recorded in the VM's state: re-running continues after the last finished
    step.  If the spec changed since, --restart starts over and --force continues.  On a failure
    the console screenshot, serial log and (Windows) Setup logs are saved and their folder named.
    With os = "probe" a tiny Linux guest stands in for Windows (no ISO needed).
    """
    if restart and force:
        raise UsageError("--restart and --force exclude each other", hint="pick one")
    if builtin is not None:
        if spec_path is not None:
            raise UsageError("give either --builtin or --spec, not both", hint="vmforge create --builtin probe-demo")
        spec_path = BUILTIN_SPECS[builtin]
    fields = {"vm.name": name, "windows.iso": str(iso) if iso else None, "vm.memory": memory, "vm.vcpus": vcpus}
    spec, _source = load_spec(spec_path, Overrides(sets, fields))
    reporter = Reporter()
    conn = connect(spec.vm.connect)
    job = Create(spec, conn, reporter=reporter)
    try:
        try:
            result = job.run(CreateOptions(restart=restart, force=force))
        except PlanChanged as exc:
            if as_json or not sys.stdin.isatty():
                raise
            reporter.warn(exc.message)
            if not click.confirm("Destroy what was made and start over (--restart)?", default=False, err=True):
                raise
            job.close()
            job = Create(spec, conn, reporter=reporter)
            result = job.run(CreateOptions(restart=True))
    finally:
        job.close()  # what the run opened itself (a connection after a libvirtd restart)
        conn.close()
    if as_json:
        print_json(result.to_data())
        return
    for step in result.steps:
        note = step.detail.get("skipped", "")
        echo(f"{step.name:20} {step.status:16} {note}".rstrip())
    echo(f"VM {result.name} is ready; state in {result.state_dir}; 'vmforge creds {result.name}' shows its credentials")
    echo(f"state: {VmDir(result.name).state_file}")
