"""``vmforge gpu list``: display devices and what passing them through would involve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json
from vmforge.host.pci import PciHost


@click.group(cls=VmforgeGroup)
def gpu() -> None:
    """GPUs on this host (for gpu.devices)."""


@gpu.command("list")
@click.option("--sys-root", type=click.Path(path_type=Path, file_okay=False), default=Path("/"), hidden=True)
@json_option
def list_gpus(sys_root: Path, as_json: bool) -> None:
    """Display-class PCI devices: their functions, IOMMU group members, driver, boot_vga, reset method."""
    host = PciHost(sys_root)
    rows: list[dict[str, Any]] = []
    for device in host.display_devices():
        functions = [d for d in host.devices() if d.address.slot_key == device.address.slot_key]
        members = host.group_members(device.iommu_group) if device.iommu_group is not None else []
        row = device.to_data()
        row["functions"] = [f.to_data() for f in functions]
        row["iommu_group_members"] = [m.to_data() | {"bridge": m.is_bridge} for m in members]
        rows.append(row)
    if as_json:
        print_json({"iommu": host.iommu_enabled(), "gpus": rows})
        return
    if not rows:
        echo("no display devices found")
    for row in rows:
        boot = " boot_vga" if row["boot_vga"] else ""
        echo(
            f"{row['address']} {row['id']} driver={row['driver'] or '-'} group={row['iommu_group']}"
            f" reset={','.join(row['reset_methods']) or '-'}{boot}"
        )
        for member in row["iommu_group_members"]:
            if member["address"] != row["address"]:
                kind = " (bridge, stays)" if member["bridge"] else ""
                echo(f"    group member {member['address']} {member['id']} class {member['class']}{kind}")
    if not host.iommu_enabled():
        echo("IOMMU is off: no IOMMU groups (boot with intel_iommu=on or amd_iommu=on for passthrough)")
