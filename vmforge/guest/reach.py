"""Reaching a VM's guest over the channels its spec names, in the spec's order.

``remote.channels`` lists the channels vmforge sets up and uses ('agent', 'winrm', 'ssh'), most
preferred first.  :func:`reach_guest` takes an explicit channel (``--via``) or tries each listed
one in turn and returns a :class:`~vmforge.guest.session.Guest` on the first that answers.  A
channel that is not usable yet (no domain, no address, nothing pinned, nothing listening) is
passed over with its reason; a channel that answers *wrongly* (certificate or host key not the
pinned one, credentials refused) stops the search: trying the next channel would hide it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vmforge.errors import OwnershipError, VmforgeError
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.os_windows import WindowsAdapter
from vmforge.guest.remote_access import open_remote
from vmforge.guest.session import Guest
from vmforge.guest.ssh import HostKeyChanged, SshAuthError
from vmforge.guest.transport import GuestError, GuestTransport, GuestUnreachable
from vmforge.guest.winrm import CertificateMismatch, WinrmAuthError
from vmforge.libvirt_conn import connect
from vmforge.logs import get_logger
from vmforge.ownership import lookup_owned_domain
from vmforge.spec import RemoteChannel, Spec
from vmforge.state import VmDir

log = get_logger("guest.reach")

#: Answers that are wrong rather than absent: never a reason to fall back to another channel.
REFUSALS: tuple[type[GuestError], ...] = (CertificateMismatch, HostKeyChanged, WinrmAuthError, SshAuthError)


@dataclass(frozen=True)
class Reached:
    channel: RemoteChannel
    guest: Guest

    @property
    def transport(self) -> GuestTransport:
        return self.guest.transport


def open_channel(spec: Spec, vmdir: VmDir, channel: RemoteChannel, uri: str, origin: str) -> GuestTransport:
    """The transport for ``channel`` to vmforge's VM ``spec.vm.name`` (not yet contacted)."""
    name = spec.vm.name
    if channel is RemoteChannel.AGENT or not spec.remote.address:
        conn = connect(uri, origin)
        try:
            found = lookup_owned_domain(conn, name)  # a foreign same-named domain: OwnershipError
            if found is None:
                raise GuestUnreachable(f"no vmforge VM named '{name}' at {uri}", hint="'vmforge list' shows the VMs")
            domain = found[0]
            if channel is not RemoteChannel.AGENT:
                return open_remote(spec, vmdir, channel, domain)
        finally:
            conn.close()
        return AgentTransport(LibvirtAgentChannel(lambda: connect(uri, origin), name))
    if not vmdir.exists():
        raise GuestUnreachable(
            f"no vmforge VM named '{name}' (nothing in {vmdir.root})",
            hint="'vmforge list' shows the VMs; its credentials and pins live in that folder",
        )
    return open_remote(spec, vmdir, channel, None)


def _guest(channel: RemoteChannel, transport: GuestTransport) -> Guest:
    # WinRM reaches only Windows; the other channels ask the guest what it runs.
    return Guest(transport, WindowsAdapter() if channel is RemoteChannel.WINRM else None)


def reach_guest(
    spec: Spec,
    vmdir: VmDir,
    *,
    via: RemoteChannel | None,
    uri: str,
    origin: str,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    opener: Callable[[Spec, VmDir, RemoteChannel, str, str], GuestTransport] = open_channel,
) -> Reached:
    """The guest over ``via``, or over the first of ``remote.channels`` that answers.

    ``via``: that channel only; it waits until ``deadline`` (default: one try of
    ``remote.connect_timeout``).  Otherwise each listed channel gets one such try, in order;
    with ``deadline`` the round is repeated until it passes (``vmforge guest wait``).
    """
    window = spec.remote.connect_timeout
    if via is not None:
        transport = opener(spec, vmdir, via, uri, origin)
        try:
            transport.wait_ready(deadline if deadline is not None else clock() + window)
        except BaseException:
            transport.close()
            raise
        return Reached(via, _guest(via, transport))
    if not spec.remote.channels:
        raise VmforgeError("remote.channels is empty: no way to reach the guest", hint="e.g. channels = ['agent']")
    failures: dict[RemoteChannel, str] = {}
    while True:
        for channel in spec.remote.channels:
            try:
                transport = opener(spec, vmdir, channel, uri, origin)
            except OwnershipError:
                raise  # a domain vmforge did not make has that name: reach nothing of it
            except VmforgeError as exc:  # no domain or address, nothing pinned yet …
                failures[channel] = exc.message
                continue
            try:
                limit = clock() + window
                transport.wait_ready(limit if deadline is None else min(limit, max(deadline, clock())))
            except REFUSALS:
                transport.close()
                raise
            except GuestError as exc:
                transport.close()
                failures[channel] = exc.message
                log.debug("channel %s of %s not available: %s", channel.value, spec.vm.name, exc.message)
                continue
            return Reached(channel, _guest(channel, transport))
        if deadline is None or clock() >= deadline:
            break
        sleep(min(1.0, max(0.0, deadline - clock())))
    tried = "; ".join(f"{c.value}: {m}" for c, m in failures.items())
    raise GuestUnreachable(
        f"VM '{spec.vm.name}' answers on none of its channels ({tried})",
        hint="is it running? 'vmforge guest wait NAME' waits for it; --via picks one channel",
    )
