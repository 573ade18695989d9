"""``vmforge destroy NAME``: remove a VM vmforge made, and only what it made."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.domain.destroy import destroy_vm
from vmforge.libvirt_conn import connect
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


@click.command("destroy")
@click.argument("name")
@click.option(
    "--keep-disk", is_flag=True, help="Keep the system disk volume (it is no longer tracked); media volumes still go."
)
@click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")
@spec_options
@json_option
def destroy(  # noqa: PLR0917 - click passes every option
    name: str, keep_disk: bool, uri: str | None, spec_path: Path | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Stop and remove VM NAME: domain, NVRAM, TPM state, its volumes, its shared-memory file and
    its state folder.

    Only objects proven vmforge's are touched; a foreign domain named NAME is an error.  Running
    it again finishes what an interrupted run left.
    """
    origin = "--connect"
    if uri is None:
        loaded, _ = load_spec(spec_path, Overrides(sets))
        uri, origin = loaded.vm.connect, "vm.connect"
    conn = connect(uri, origin)
    vm_dir = VmDir(name)
    try:
        with Reporter().step(f"destroying {name}"):
            if vm_dir.root.exists():
                with vm_dir.lock():  # not while another vmforge command works on it
                    report = destroy_vm(conn, name, vm_dir, keep_disk=keep_disk)
            else:
                report = destroy_vm(conn, name, vm_dir, keep_disk=keep_disk)
    finally:
        conn.close()
    if as_json:
        print_json(report.to_data())
        return
    for item in report.removed:
        echo(f"removed  {item}")
    for item in report.kept:
        echo(f"kept     {item}")
    if not report.removed:
        echo(f"nothing of {name} left to remove")
