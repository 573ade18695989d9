"""``vmforge guest``: reach into a running VM over the channels its spec names (``remote.channels``,
in that order; ``--via agent|winrm|ssh`` picks one): run programs, copy files, wait for it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.errors import UsageError, VmforgeError
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.reach import Reached, reach_guest
from vmforge.guest.session import Guest
from vmforge.libvirt_conn import connect
from vmforge.ownership import lookup_owned_domain
from vmforge.spec import Overrides, RemoteChannel, load_spec
from vmforge.state import VmDir


class GuestCommandFailed(VmforgeError):
    """A program run in the guest exited non-zero (its output was passed through)."""

    def __init__(self, message: str, rc: int) -> None:
        super().__init__(message, hint="the command ran; look at its output above")
        self.rc = rc

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["rc"] = self.rc
        return data


def _reach(
    name: str, spec_path: Path | None, sets: tuple[str, ...], uri: str | None, via: str | None,
    *, deadline: float | None = None,
) -> Reached:  # fmt: skip
    """VM ``name``'s guest over ``--via`` or the first of the spec's channels that answers."""
    spec, _ = load_spec(spec_path, Overrides(sets, {"vm.name": name}))
    target, origin = (uri, "--connect") if uri is not None else (spec.vm.connect, "vm.connect")
    channel = RemoteChannel(via) if via is not None else None
    return reach_guest(spec, VmDir(spec.vm.name), via=channel, uri=target, origin=origin, deadline=deadline)


def open_guest(name: str, uri: str, origin: str) -> Guest:
    """The agent transport to vmforge's VM ``name`` (a foreign domain is refused)."""
    conn = connect(uri, origin)
    try:
        if lookup_owned_domain(conn, name) is None:
            raise VmforgeError(f"no vmforge VM named '{name}' at {uri}", hint="'vmforge list' shows the VMs")
    finally:
        conn.close()
    return Guest(AgentTransport(LibvirtAgentChannel(lambda: connect(uri, origin), name)))


def _common(func: Any) -> Any:
    func = click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")(func)
    func = click.option(
        "--via",
        type=click.Choice([c.value for c in RemoteChannel]),
        default=None,
        help="Channel to use (default: the first of the spec's remote.channels that answers).",
    )(func)
    return spec_options(func)


@click.group("guest", cls=VmforgeGroup)
def guest() -> None:
    """Run commands in a VM and copy files: guest agent, WinRM or SSH (remote.channels, --via)."""


@guest.command("wait")
@click.argument("name")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait.")
@_common
@json_option
def wait_cmd(*, name: str, timeout: float, spec_path: Path | None, sets: tuple[str, ...], uri: str | None,
             via: str | None, as_json: bool) -> None:  # fmt: skip
    """Wait until VM NAME answers on one of its channels (or the --via one)."""
    start = time.monotonic()
    reached = _reach(name, spec_path, sets, uri, via, deadline=start + timeout)
    waited = time.monotonic() - start
    try:
        info = reached.transport.os_info()
    finally:
        reached.transport.close()
    if as_json:
        print_json(
            {
                "name": name,
                "ready": True,
                "channel": reached.channel.value,
                "via": reached.transport.name,
                "waited_seconds": round(waited, 2),
                "os": info.__dict__,
            }
        )
    else:
        echo(f"{name}: {reached.transport.name} answers ({info.name or info.id}) after {waited:.1f}s")


@guest.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds the command may take.")
@_common
@json_option
def exec_cmd(*, name: str, argv: tuple[str, ...], timeout: float, spec_path: Path | None, sets: tuple[str, ...],
             uri: str | None, via: str | None, as_json: bool) -> None:  # fmt: skip
    """Run a program in VM NAME: vmforge guest exec NAME -- CMD [ARG...].

    Its stdout and stderr are passed through; a non-zero exit in the guest makes vmforge exit 1
    (the guest's exit code is in the error message, and in --json output as "rc").
    """
    reached = _reach(name, spec_path, sets, uri, via)
    try:
        result = reached.transport.run(list(argv), timeout=timeout)
    finally:
        reached.transport.close()
    if as_json:
        print_json(
            {
                "name": name,
                "channel": reached.channel.value,
                "argv": list(argv),
                "rc": result.rc,
                "stdout": result.stdout.decode("utf-8", "replace"),
                "stderr": result.stderr.decode("utf-8", "replace"),
            }
        )
        if result.rc != 0:
            sys.exit(1)
        return
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    if result.rc != 0:
        raise GuestCommandFailed(f"{argv[0]} exited {result.rc} in the guest", result.rc)


def _split(target: str) -> tuple[str | None, str]:
    """``NAME:PATH`` -> (NAME, PATH); a host path -> (None, path).  ``./a:b`` stays a host path."""
    head, sep, tail = target.partition(":")
    if sep and head and "/" not in head and "\\" not in head and len(head) > 1:
        return head, tail
    return None, target


@guest.command("cp")
@click.argument("source")
@click.argument("dest")
@_common
@json_option
def cp_cmd(*, source: str, dest: str, spec_path: Path | None, sets: tuple[str, ...], uri: str | None,
           via: str | None, as_json: bool) -> None:  # fmt: skip
    """Copy a file into or out of a VM, verified by a SHA-256 taken in the guest.

    \b
      vmforge guest cp ./setup.ps1 win11:C:\\Windows\\Temp\\setup.ps1
      vmforge guest cp win11:C:\\Windows\\Temp\\log.txt ./log.txt
    """
    src_vm, src_path = _split(source)
    dst_vm, dst_path = _split(dest)
    if (src_vm is None) == (dst_vm is None):
        raise UsageError(
            "exactly one of SOURCE and DEST must be NAME:PATH",
            hint="e.g. vmforge guest cp ./file win11:C:\\Temp\\file",
        )
    if src_vm is None:
        assert dst_vm is not None
        local = Path(src_path)
        if not local.is_file():
            raise UsageError(f"{local} is not a file on this host")
        direction, vm_name = "in", dst_vm
    else:
        local = Path(dst_path)
        if local.is_dir():
            raise UsageError(f"{local} is a folder; give the file name to write")
        direction, vm_name = "out", src_vm
    reached = _reach(vm_name, spec_path, sets, uri, via)
    try:
        if direction == "in":
            digest = reached.guest.copy_in(local, dst_path)
        else:
            digest = reached.guest.copy_out(src_path, local)
    finally:
        reached.transport.close()
    if as_json:
        print_json(
            {
                "name": vm_name,
                "channel": reached.channel.value,
                "direction": direction,
                "source": source,
                "dest": dest,
                "sha256": digest,
            }
        )
    else:
        echo(f"copied {source} -> {dest} over {reached.transport.name} (sha256 {digest}, verified in the guest)")
