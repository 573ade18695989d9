"""Per-VM remote-access material and how to reach the guest over WinRM or SSH.

Secrets (0600 ``secrets.json``): the administrator password, the WinRM certificate's private key,
the SSH private key.  Pins (``state.json``, not secret): the WinRM certificate fingerprint and
the SSH host key, recorded under ``extra["remote"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from vmforge.credentials import ADMIN_PASSWORD, ADMIN_PASSWORD_NEXT, admin_password
from vmforge.errors import VmforgeError
from vmforge.guest.certs import CertificatePair, generate_certificate
from vmforge.guest.clixml import first_error_line
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.os_windows import WindowsAdapter, render_script
from vmforge.guest.ssh import SshEndpoint, SshTransport
from vmforge.guest.transport import GuestError, GuestTransport, GuestUnreachable
from vmforge.guest.winrm import WinrmEndpoint, WinrmTransport
from vmforge.logs import get_logger
from vmforge.spec import AddressSource, OsKind, RemoteChannel, Spec, WinrmAuth, WinrmScheme
from vmforge.state import VmDir, VmState, generate_password

log = get_logger("guest.remote")

# names of entries in secrets.json (not secrets themselves)
SECRET_WINRM_KEY = "winrm_cert_key"  # noqa: S105
SECRET_WINRM_CERT = "winrm_cert_pem"  # noqa: S105
SECRET_SSH_KEY = "ssh_private_key"  # noqa: S105
PIN_WINRM = "winrm_cert_sha256"
PIN_SSH = "ssh_host_key"

# virDomainInterfaceAddressesSource values (libvirt-python constants, kept here for typing)
_SOURCES = {AddressSource.LEASE: 0, AddressSource.AGENT: 1, AddressSource.ARP: 2}


# -- credentials and keys ---------------------------------------------------------------------------


def winrm_certificate(vmdir: VmDir, common_name: str) -> CertificatePair:
    """The VM's WinRM certificate, made on first use; its fingerprint is pinned at once."""
    values = vmdir.load_secrets()
    if SECRET_WINRM_KEY not in values or SECRET_WINRM_CERT not in values:
        pair = generate_certificate(common_name)
        values[SECRET_WINRM_KEY] = pair.key_pem
        values[SECRET_WINRM_CERT] = pair.cert_pem
        vmdir.save_secrets(values)
        set_pin(vmdir, PIN_WINRM, pair.fingerprint)
    return CertificatePair(values[SECRET_WINRM_CERT], values[SECRET_WINRM_KEY])


def ssh_key(vmdir: VmDir) -> tuple[str, str]:
    """(OpenSSH private key text, ``ssh-ed25519 …`` public line) for the VM, made on first use."""

    def make() -> str:
        key = ed25519.Ed25519PrivateKey.generate()
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode("ascii")

    private = vmdir.secret(SECRET_SSH_KEY, make)
    loaded = serialization.load_ssh_private_key(private.encode(), password=None)
    public = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode('ascii')} vmforge-{vmdir.name}"


def check_rotatable(spec: Spec) -> None:
    if spec.windows.password.get_secret_value() != "generate":
        raise VmforgeError(
            "windows.password is set in the spec, so vmforge does not own the administrator password",
            hint="change it yourself, or set windows.password = 'generate'",
        )


def rotate_admin_password(spec: Spec, vmdir: VmDir, transport: GuestTransport, *, timeout: float = 120.0) -> None:
    """Give the administrator a new random password (after post-install: the bootstrap password
    was on the answer media).  The new one travels on stdin, never on a command line; it is saved
    as ``admin_password_next`` *before* the guest changes, so an interrupted rotation never locks
    vmforge out (both values are then in the secrets file)."""
    check_rotatable(spec)
    admin_password(spec, vmdir)  # make sure the current one is recorded
    values = vmdir.load_secrets()
    values[ADMIN_PASSWORD_NEXT] = generate_password()
    vmdir.save_secrets(values)
    script = render_script("set-password", user=spec.windows.admin_user)
    result = transport.run(
        WindowsAdapter().script_argv(script), stdin=(values[ADMIN_PASSWORD_NEXT] + "\r\n").encode(), timeout=timeout
    )
    values = vmdir.load_secrets()
    if result.rc != 0:
        values.pop(ADMIN_PASSWORD_NEXT, None)
        vmdir.save_secrets(values)
        raise GuestError(
            f"the guest refused the new password for {spec.windows.admin_user!r}: {first_error_line(result.stderr)}",
            hint="the old password stays valid; check the account on the guest",
        )
    values[ADMIN_PASSWORD] = values.pop(ADMIN_PASSWORD_NEXT)
    vmdir.save_secrets(values)


# -- pins ---------------------------------------------------------------------------------------------


def _remote_extra(state: VmState) -> dict[str, Any]:
    remote = state.extra.setdefault("remote", {})
    assert isinstance(remote, dict)
    return remote


def get_pin(vmdir: VmDir, key: str) -> str | None:
    state = vmdir.load()
    if state is None:
        return None
    value = _remote_extra(state).get(key)
    return str(value) if value else None


def set_pin(vmdir: VmDir, key: str, value: str | None) -> None:
    state = vmdir.load() or VmState(name=vmdir.name)
    remote = _remote_extra(state)
    if value is None:
        remote.pop(key, None)
    else:
        remote[key] = value
    vmdir.save(state)


# -- addresses ----------------------------------------------------------------------------------------


def pick_address(interfaces: Mapping[str, Any]) -> str | None:
    """The first usable IPv4 (else IPv6) address in libvirt's interfaceAddresses() answer."""
    candidates: list[tuple[int, str]] = []
    for name in sorted(interfaces):
        for entry in interfaces[name].get("addrs") or []:
            addr = str(entry.get("addr", ""))
            if not addr or addr.startswith(("127.", "169.254.", "fe80:")) or addr == "::1":
                continue
            candidates.append((0 if int(entry.get("type", 0)) == 0 else 1, addr))
    return min(candidates)[1] if candidates else None


def guest_address(spec: Spec, domain: Any | None) -> str:
    """remote.address, else the first address libvirt finds through remote.address_sources."""
    if spec.remote.address:
        return spec.remote.address
    if domain is None:
        raise GuestUnreachable(
            f"no address for VM '{spec.vm.name}': remote.address is unset and the domain is not defined",
            hint="set remote.address, or create and start the VM first",
        )
    tried = []
    for source in spec.remote.address_sources:
        try:
            found = pick_address(domain.interfaceAddresses(_SOURCES[source]) or {})
        except Exception as exc:  # libvirt.libvirtError: the source has nothing (no lease, no agent)
            log.debug("interfaceAddresses(%s) failed: %s", source.value, exc)
            found = None
        if found:
            return found
        tried.append(source.value)
    raise GuestUnreachable(
        f"libvirt knows no address of VM '{spec.vm.name}' (asked: {', '.join(tried)})",
        hint="is the guest up with a network? set remote.address to reach it directly",
    )


# -- WinRM --------------------------------------------------------------------------------------------


def winrm_endpoint(spec: Spec, vmdir: VmDir, address: str) -> WinrmEndpoint:
    remote = spec.remote
    https = remote.winrm_scheme == WinrmScheme.HTTPS
    port = remote.winrm_port or (5986 if https else 5985)
    fingerprint = get_pin(vmdir, PIN_WINRM) if https else None
    if https and fingerprint is None:
        raise VmforgeError(
            f"no WinRM certificate is pinned for VM '{vmdir.name}'",
            hint=f"run 'vmforge remote pin {vmdir.name}' (it shows the fingerprint to check against the guest)",
        )
    if not https:
        what = (
            "Basic sends the password and all traffic readable"
            if remote.winrm_auth == WinrmAuth.BASIC
            else ("NTLM seals the messages but nothing proves the server is your guest")
        )
        log.warning("WinRM over plain HTTP to %s:%d (remote.allow_insecure): %s", address, port, what)
    return WinrmEndpoint(
        host=address,
        port=port,
        scheme=remote.winrm_scheme.value,
        auth=remote.winrm_auth.value,
        username=spec.windows.admin_user,
        password=admin_password(spec, vmdir),
        fingerprint=fingerprint,
        vm=vmdir.name,
    )


def open_winrm(spec: Spec, vmdir: VmDir, address: str) -> WinrmTransport:
    return WinrmTransport(
        winrm_endpoint(spec, vmdir, address),
        operation_timeout=spec.remote.operation_timeout,
        connect_timeout=spec.remote.connect_timeout,
    )


# -- SSH ----------------------------------------------------------------------------------------------


def open_ssh(spec: Spec, vmdir: VmDir, address: str) -> SshTransport:
    """SSH with the VM's key; the host key is pinned on first contact and checked after."""
    private, _ = ssh_key(vmdir)
    endpoint = SshEndpoint(
        address,
        spec.remote.ssh_port,
        spec.remote.ssh_user or spec.windows.admin_user,
        private,
        get_pin(vmdir, PIN_SSH),
        vm=vmdir.name,
    )
    adapter = WindowsAdapter() if spec.os == OsKind.WINDOWS else LinuxAdapter()
    return SshTransport(
        endpoint,
        adapter,
        on_first_key=lambda line: set_pin(vmdir, PIN_SSH, line),
        connect_timeout=spec.remote.connect_timeout,
    )


def open_remote(spec: Spec, vmdir: VmDir, channel: RemoteChannel, domain: Any | None = None) -> GuestTransport:
    """The WinRM or SSH transport for ``channel`` (the agent transport lives with the probe code)."""
    address = guest_address(spec, domain)
    if channel == RemoteChannel.WINRM:
        return open_winrm(spec, vmdir, address)
    if channel == RemoteChannel.SSH:
        return open_ssh(spec, vmdir, address)
    raise VmforgeError(f"open_remote does not open the {channel.value!r} channel", hint="use vmforge.guest.agent")
