"""Everyday commands on VMs vmforge made (``list`` now; more join as issues land)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.ownership import list_owned_domains
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir, list_vm_dirs

_STATES = {
    0: "none",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutting-down",
    5: "shut-off",
    6: "crashed",
    7: "suspended",
}


@click.command("list")
@spec_options
@click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")
@json_option
def list_vms(spec_path: Path | None, sets: tuple[str, ...], uri: str | None, as_json: bool) -> None:
    """List the VMs vmforge created (domains carrying vmforge's owner tag), with their state.

    Foreign domains on the same connection are never shown or touched.
    """
    origin = "--connect"
    if uri is None:
        loaded, _ = load_spec(spec_path, Overrides(sets))
        uri, origin = loaded.vm.connect, "vm.connect"
    conn = connect(uri, origin)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for dom, tag in list_owned_domains(conn):
        name = str(dom.name())
        seen.add(name)
        with libvirt_errors(f"reading domain {name}"):
            state_code = dom.state()[0]
        vm_state = VmDir(name).load()
        rows.append(
            {
                "name": name,
                "domain_state": _STATES.get(state_code, str(state_code)),
                "last_step": vm_state.last_step() if vm_state else None,
                "vmforge_version": tag.version,
                "plan_hash": tag.plan_hash,
                "volumes": [f"{v.pool}/{v.name}" for v in tag.volumes],
            }
        )
    # State folders whose domain is gone (an interrupted create, or removed by hand).
    for name in list_vm_dirs():
        if name not in seen:
            vm_state = VmDir(name).load()
            rows.append(
                {
                    "name": name,
                    "domain_state": "undefined",
                    "last_step": vm_state.last_step() if vm_state else None,
                    "vmforge_version": vm_state.vmforge_version if vm_state else None,
                    "plan_hash": vm_state.plan_hash if vm_state else None,
                    "volumes": [],
                }
            )
    if as_json:
        print_json({"connect": uri, "vms": rows})
        return
    if not rows:
        echo(f"no vmforge VMs at {uri}")
        return
    echo(f"{'NAME':24} {'DOMAIN':14} LAST STEP")
    for row in rows:
        echo(f"{row['name']:24} {row['domain_state']:14} {row['last_step'] or '-'}")
