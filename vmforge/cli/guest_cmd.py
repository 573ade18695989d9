"""``vmforge guest``: reach into a running VM through its guest agent (no network needed)."""

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
from vmforge.guest.session import Guest
from vmforge.libvirt_conn import connect
from vmforge.ownership import lookup_owned_domain
from vmforge.spec import Overrides, load_spec


class GuestCommandFailed(VmforgeError):
    """A program run in the guest exited non-zero (its output was passed through)."""

    def __init__(self, message: str, rc: int) -> None:
        super().__init__(message, hint="the command ran; look at its output above")
        self.rc = rc

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["rc"] = self.rc
        return data


def _uri(spec_path: Path | None, sets: tuple[str, ...], uri: str | None) -> tuple[str, str]:
    if uri is not None:
        return uri, "--connect"
    loaded, _ = load_spec(spec_path, Overrides(sets))
    return loaded.vm.connect, "vm.connect"


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
    return spec_options(func)


@click.group("guest", cls=VmforgeGroup)
def guest() -> None:
    """Run commands in a VM and copy files, through the QEMU guest agent."""


@guest.command("wait")
@click.argument("name")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait.")
@_common
@json_option
def wait_cmd(*, name: str, timeout: float, spec_path: Path | None, sets: tuple[str, ...], uri: str | None,
             as_json: bool) -> None:  # fmt: skip
    """Wait until the guest agent of VM NAME answers."""
    target, origin = _uri(spec_path, sets, uri)
    session = open_guest(name, target, origin)
    start = time.monotonic()
    session.transport.wait_ready(start + timeout)
    waited = time.monotonic() - start
    info = session.transport.os_info()
    if as_json:
        print_json({"name": name, "ready": True, "waited_seconds": round(waited, 2), "os": info.__dict__})
    else:
        echo(f"{name}: guest agent answers ({info.name or info.id}) after {waited:.1f}s")


@guest.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds the command may take.")
@_common
@json_option
def exec_cmd(*, name: str, argv: tuple[str, ...], timeout: float, spec_path: Path | None, sets: tuple[str, ...],
             uri: str | None, as_json: bool) -> None:  # fmt: skip
    """Run a program in VM NAME: vmforge guest exec NAME -- CMD [ARG...].

    Its stdout and stderr are passed through; a non-zero exit in the guest makes vmforge exit 1
    (the guest's exit code is in the error message, and in --json output as "rc").
    """
    target, origin = _uri(spec_path, sets, uri)
    session = open_guest(name, target, origin)
    result = session.transport.run(list(argv), timeout=timeout)
    if as_json:
        print_json(
            {
                "name": name,
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
           as_json: bool) -> None:  # fmt: skip
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
    target, origin = _uri(spec_path, sets, uri)
    if src_vm is None:
        assert dst_vm is not None
        local = Path(src_path)
        if not local.is_file():
            raise UsageError(f"{local} is not a file on this host")
        digest = open_guest(dst_vm, target, origin).copy_in(local, dst_path)
        direction, vm_name = "in", dst_vm
    else:
        local = Path(dst_path)
        if local.is_dir():
            raise UsageError(f"{local} is a folder; give the file name to write")
        digest = open_guest(src_vm, target, origin).copy_out(src_path, local)
        direction, vm_name = "out", src_vm
    if as_json:
        print_json({"name": vm_name, "direction": direction, "source": source, "dest": dest, "sha256": digest})
    else:
        echo(f"copied {source} -> {dest} (sha256 {digest}, verified in the guest)")
