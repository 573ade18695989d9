"""``vmforge remote``: reach a guest over WinRM or SSH — pin its identity, run a command."""

from __future__ import annotations

import ssl
import sys
import time
from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.errors import UsageError
from vmforge.guest.certs import fetch_certificate, fingerprint_der, show_fingerprint
from vmforge.guest.remote_access import (
    PIN_SSH,
    PIN_WINRM,
    SECRET_WINRM_CERT,
    check_rotatable,
    get_pin,
    guest_address,
    open_ssh,
    open_winrm,
    rotate_admin_password,
    set_pin,
)
from vmforge.guest.transport import GuestTransport
from vmforge.libvirt_conn import connect
from vmforge.spec import Overrides, Spec, WinrmScheme, load_spec
from vmforge.state import VmDir

CHANNELS = click.Choice(["winrm", "ssh"])


def _load(spec_path: Path | None, sets: tuple[str, ...], name: str | None) -> tuple[Spec, VmDir]:
    fields = {"vm.name": name} if name else None
    spec, _ = load_spec(spec_path, Overrides(sets, fields))
    return spec, VmDir(spec.vm.name)


def _address(spec: Spec) -> str:
    if spec.remote.address:
        return spec.remote.address
    conn = connect(spec.vm.connect)
    try:
        try:
            domain = conn.lookupByName(spec.vm.name)
        except Exception:
            domain = None
        return guest_address(spec, domain)
    finally:
        conn.close()


def _normalise(fingerprint: str) -> str:
    value = fingerprint.replace(":", "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise UsageError(
            f"--fingerprint {fingerprint!r} is not a SHA-256 fingerprint",
            hint="64 hexadecimal digits, with or without ':' between pairs",
        )
    return value


@click.group("remote")
def remote() -> None:
    """Reach a guest over WinRM or SSH: pin its identity, run commands."""


@remote.command("pin")
@click.argument("name", required=False)
@click.option("--channel", type=CHANNELS, default="winrm", show_default=True)
@click.option("--fingerprint", default=None, help="WinRM: the SHA-256 you checked on the guest; pinned if presented.")
@click.option("--reset", is_flag=True, help="Forget the pin (SSH: the next contact records the new host key).")
@spec_options
@json_option
def pin(
    *,
    name: str | None,
    channel: str,
    fingerprint: str | None,
    reset: bool,
    spec_path: Path | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show, check and record the guest's WinRM certificate or SSH host key.

    WinRM: the certificate vmforge generated for the VM is pinned automatically; any other is
    pinned only with --fingerprint matching what the guest presents (check it on the guest).
    """
    spec, vmdir = _load(spec_path, sets, name)
    result: dict[str, Any] = {"vm": vmdir.name, "channel": channel}
    if reset:
        set_pin(vmdir, PIN_WINRM if channel == "winrm" else PIN_SSH, None)
        result["pinned"] = None
    elif channel == "ssh":
        transport = open_ssh(spec, vmdir, _address(spec))
        try:
            transport.wait_ready(time.monotonic() + spec.remote.connect_timeout * 3)
        finally:
            transport.close()
        result["pinned"] = get_pin(vmdir, PIN_SSH)
    else:
        if spec.remote.winrm_scheme != WinrmScheme.HTTPS:
            raise UsageError("remote.winrm_scheme is 'http': there is no certificate to pin")
        address = _address(spec)
        port = spec.remote.winrm_port or 5986
        presented = fingerprint_der(fetch_certificate(address, port, spec.remote.connect_timeout))
        own = vmdir.load_secrets().get(SECRET_WINRM_CERT)
        result.update(address=f"{address}:{port}", presented=presented, previous=get_pin(vmdir, PIN_WINRM))
        if fingerprint is not None:
            wanted = _normalise(fingerprint)
            if wanted != presented:
                raise UsageError(
                    f"{address}:{port} presents {show_fingerprint(presented)}, not {show_fingerprint(wanted)}",
                    hint="nothing was pinned; check which machine answers at that address",
                )
            set_pin(vmdir, PIN_WINRM, presented)
        elif own is not None and fingerprint_der(ssl.PEM_cert_to_DER_cert(own)) == presented:
            set_pin(vmdir, PIN_WINRM, presented)  # the certificate vmforge made for this VM
        result["pinned"] = get_pin(vmdir, PIN_WINRM)
        if result["pinned"] != presented and not as_json:
            sys.stderr.write(
                f"{address}:{port} presents {show_fingerprint(presented)}, which is not pinned.\n"
                "Check it on the guest (Get-ChildItem Cert:\\LocalMachine\\My | Format-List Thumbprint,Subject\n"
                "shows SHA-1; certutil -dump shows both) and pin it with --fingerprint.\n"
            )
    if as_json:
        print_json(result)
    else:
        pinned = result.get("pinned")
        echo(f"{vmdir.name} {channel}: pinned {show_fingerprint(pinned) if channel == 'winrm' and pinned else pinned}")


@remote.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--channel", type=CHANNELS, default="winrm", show_default=True)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds the command may take.")
@click.argument("command", nargs=-1, required=True)
@spec_options
@json_option
@click.pass_context
def exec_(
    ctx: click.Context,
    *,
    name: str,
    channel: str,
    timeout: float,
    command: tuple[str, ...],
    spec_path: Path | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run COMMAND in the guest (after --); exits with its exit code.

    \b
    vmforge remote exec win -- ipconfig /all
    vmforge remote exec win --channel ssh -- whoami
    """
    spec, vmdir = _load(spec_path, sets, name)
    address = _address(spec)
    transport: GuestTransport = (
        open_winrm(spec, vmdir, address) if channel == "winrm" else open_ssh(spec, vmdir, address)
    )
    try:
        result = transport.run(list(command), timeout=timeout)
    finally:
        transport.close()
    if as_json:
        print_json(
            {
                "rc": result.rc,
                "stdout": result.stdout.decode("utf-8", "replace"),
                "stderr": result.stderr.decode("utf-8", "replace"),
            }
        )
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.flush()
    ctx.exit(result.rc)


@remote.command("rotate-password")
@click.argument("name", required=False)
@spec_options
def rotate_password(*, name: str | None, spec_path: Path | None, sets: tuple[str, ...]) -> None:
    """Give the guest's administrator a new random password (over WinRM; kept in the 0600 secrets).

    The new password is sent on stdin, never on a command line, and never printed.
    """
    spec, vmdir = _load(spec_path, sets, name)
    check_rotatable(spec)
    transport = open_winrm(spec, vmdir, _address(spec))
    try:
        with vmdir.lock():
            rotate_admin_password(spec, vmdir, transport)
    finally:
        transport.close()
    echo(f"{vmdir.name}: administrator password rotated (see {vmdir.secrets_file})")
