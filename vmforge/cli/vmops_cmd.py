"""Everyday commands on VMs vmforge made: status, start, stop, reboot, console, logs, creds."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import libvirt
from lxml import etree

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.domain.lifecycle import start as start_domain
from vmforge.domain.lifecycle import wait_for_stop
from vmforge.errors import UsageError, VmforgeError
from vmforge.ivshmem.managed import release_server
from vmforge.ivshmem.server_daemon import running_server
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.ownership import lookup_owned_domain
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir, list_vm_dirs

STATUS_SCHEMA = "vmforge.status/1"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
_STATES = {0: "none", 1: "running", 2: "blocked", 3: "paused", 4: "shutting-down", 5: "shut-off", 6: "crashed"}


def _connect(spec_path: Path | None, sets: tuple[str, ...], uri: str | None) -> Any:
    if uri is not None:
        return connect(uri, "--connect")
    spec, _ = load_spec(spec_path, Overrides(sets))
    return connect(spec.vm.connect, "vm.connect")


def _common(func: Any) -> Any:
    func = click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")(func)
    return spec_options(func)


def _owned(conn: Any, name: str) -> Any:
    found = lookup_owned_domain(conn, name)
    if found is None:
        raise UsageError(f"no vmforge VM named {name!r} on this connection", hint="see 'vmforge list'")
    return found[0]


def vm_status(conn: Any, name: str) -> dict[str, Any]:
    vm_dir = VmDir(name)
    state = vm_dir.load()
    found = lookup_owned_domain(conn, name)
    data: dict[str, Any] = {
        "name": name,
        "domain_state": "undefined",
        "steps": [],
        "phase": None,
        "addresses": [],
        "channels": {},
        "vnc": None,
        "last_failure": None,
        "ivshmem_server": None,
        "state_dir": str(vm_dir.root),
    }
    if state is not None:
        data["steps"] = [
            {"name": s.name, "status": "skipped" if "skipped" in s.detail else "done", "at": s.completed_at}
            for s in state.steps
        ]
        data["phase"] = state.extra.get("phase")
        data["last_failure"] = state.extra.get("last_failure")
    server = running_server(vm_dir) if vm_dir.root.exists() else None
    if server is not None:
        data["ivshmem_server"] = {"pid": server.pid, "socket": str(server.socket_path)}
    if found is None:
        return data
    dom = found[0]
    with libvirt_errors(f"reading domain {name}"):
        code = dom.state()[0]
        data["domain_state"] = _STATES.get(code, str(code))
        live = etree.fromstring(dom.XMLDesc(0).encode())
    for channel in live.findall("devices/channel"):
        target = channel.find("target")
        if target is not None and target.get("name"):
            data["channels"][str(target.get("name"))] = target.get("state") or "unknown"
    graphics = live.find("devices/graphics[@type='vnc']")
    if graphics is not None and graphics.get("port") not in (None, "-1"):
        data["vnc"] = f"{graphics.get('listen') or '127.0.0.1'}:{graphics.get('port')}"
    if code == libvirt.VIR_DOMAIN_RUNNING:
        data["addresses"] = _addresses(dom)
    return data


def _addresses(dom: Any) -> list[str]:
    found: list[str] = []
    for source in (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT):
        try:
            interfaces = dom.interfaceAddresses(source, 0)
        except libvirt.libvirtError:
            continue  # no agent yet, or no lease: not an error for status
        for iface, info in (interfaces or {}).items():
            if iface == "lo":
                continue
            for addr in info.get("addrs") or []:
                text = f"{addr['addr']}/{addr['prefix']}"
                if text not in found and not addr["addr"].startswith(("127.", "::1", "fe80")):
                    found.append(text)
        if found:
            break
    return found


@click.command("status")
@click.argument("name", required=False)
@_common
@json_option
def status(name: str | None, uri: str | None, spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Steps done, current phase, domain state, addresses, guest channels and VNC of vmforge's
    VMs (all of them, or NAME)."""
    conn = _connect(spec_path, sets, uri)
    try:
        names = [name] if name else list_vm_dirs()
        rows = [vm_status(conn, n) for n in names]
    finally:
        conn.close()
    if name and rows[0]["domain_state"] == "undefined" and not rows[0]["steps"]:
        raise UsageError(f"no vmforge VM named {name!r}", hint="see 'vmforge list'")
    if as_json:
        print_json({"schema": STATUS_SCHEMA, "vms": rows})
        return
    for row in rows:
        last = row["steps"][-1]["name"] if row["steps"] else "-"
        echo(f"{row['name']}: {row['domain_state']}, last step {last}, phase {row['phase'] or '-'}")
        for step in row["steps"]:
            echo(f"  {step['name']:20} {step['status']}")
        channels = ", ".join(f"{k} {v}" for k, v in row["channels"].items()) or "-"
        echo(f"  addresses {', '.join(row['addresses']) or '-'}; channels {channels}; vnc {row['vnc'] or '-'}")
        if row["last_failure"]:
            failure = row["last_failure"]
            echo(f"  last failure in {failure['step']}: {failure['message']} (diagnostics {failure['diagnostics']})")


@click.command("start")
@click.argument("name")
@_common
def start_cmd(name: str, uri: str | None, spec_path: Path | None, sets: tuple[str, ...]) -> None:
    """Start VM NAME (nothing happens if it runs); its ivshmem server first if it has a doorbell device."""
    conn = _connect(spec_path, sets, uri)
    try:
        start_domain(_owned(conn, name), VmDir(name))
    finally:
        conn.close()
    echo(f"{name} running")


@click.command("stop")
@click.argument("name")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds for a clean shutdown.")
@click.option("--force", is_flag=True, help="Power off at once (no clean shutdown).")
@_common
def stop_cmd(  # noqa: PLR0917 - click passes every option
    name: str, timeout: float, force: bool, uri: str | None, spec_path: Path | None, sets: tuple[str, ...]
) -> None:
    """Shut VM NAME down (ACPI, then the agent); power it off if it is still up after --timeout.
    Its ivshmem server (doorbell device) stops with it."""
    conn = _connect(spec_path, sets, uri)
    try:
        dom = _owned(conn, name)
        with libvirt_errors(f"stopping {name}"):
            if not dom.isActive():
                release_server(VmDir(name))  # converge: a guest that powered off leaves its server
                echo(f"{name} is not running")
                return
            if not force:  # the guest agent's shutdown when it answers, else the ACPI button
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        try:
            reason = "forced" if force else wait_for_stop(dom, timeout)
        except VmforgeError:
            reason = f"forced after {timeout:.0f}s without a clean shutdown"
            force = True
        if force:
            with libvirt_errors(f"powering off {name}"):
                if dom.isActive():
                    dom.destroy()
        release_server(VmDir(name))
    finally:
        conn.close()
    echo(f"{name} stopped ({reason})")


@click.command("reboot")
@click.argument("name")
@_common
def reboot_cmd(name: str, uri: str | None, spec_path: Path | None, sets: tuple[str, ...]) -> None:
    """Reboot VM NAME (a hard reset when the guest ignores the request)."""
    conn = _connect(spec_path, sets, uri)
    try:
        dom = _owned(conn, name)
        with libvirt_errors(f"rebooting {name}"):
            try:
                dom.reboot(0)
            except libvirt.libvirtError:
                dom.reset(0)
    finally:
        conn.close()
    echo(f"{name} rebooting")


@click.command("console")
@click.argument("name")
@_common
def console_cmd(name: str, uri: str | None, spec_path: Path | None, sets: tuple[str, ...]) -> None:
    """Attach to VM NAME's serial console (virsh console; Ctrl-] leaves) and print its VNC address."""
    conn = _connect(spec_path, sets, uri)
    try:
        info = vm_status(conn, name)
        target = conn.getURI()
    finally:
        conn.close()
    sys.stderr.write(f"VNC: {info['vnc'] or 'none (the VM is not running or has no VNC)'}\n")
    virsh = shutil.which("virsh")
    if virsh is None:
        raise VmforgeError("virsh is missing", hint="install libvirt-clients (scripts/setup-host)")
    sys.stderr.flush()
    os.execv(virsh, [virsh, "-c", target, "console", name])  # noqa: S606 - hand the terminal to virsh


@click.command("logs")
@click.argument("name")
@click.option("--tail", type=int, default=200, show_default=True, help="Lines of the serial log to show.")
def logs_cmd(name: str, tail: int) -> None:
    """VM NAME's serial log (last lines) and the list of its log files and diagnostics."""
    vm_dir = VmDir(name)
    if not vm_dir.root.exists():
        raise UsageError(f"no state for VM {name!r}", hint="see 'vmforge list'")
    serial = vm_dir.logs / "serial0.log"
    if serial.is_file():
        lines = serial.read_bytes().decode("utf-8", "replace").splitlines()
        for line in lines[-tail:]:
            echo(line)
    for path in sorted([*vm_dir.logs.glob("*"), *(vm_dir.root / "diagnostics").glob("*/*")]):
        sys.stderr.write(f"log: {path}\n")


@click.command("creds")
@click.argument("name")
@json_option
def creds_cmd(name: str, as_json: bool) -> None:
    """The credentials vmforge generated for VM NAME (only this command ever prints them)."""
    vm_dir = VmDir(name)
    if not vm_dir.root.exists():
        raise UsageError(f"no state for VM {name!r}", hint="see 'vmforge list'")
    values = vm_dir.load_secrets()
    if as_json:
        print_json({"name": name, "credentials": values})
        return
    if not values:
        echo(f"no generated credentials for {name}")
    for key, value in sorted(values.items()):
        if "\n" in value:
            echo(f"{key}: (multi-line; see {vm_dir.secrets_file})")
        else:
            echo(f"{key}: {value}")
