"""Channel choice: the spec's order, --via, refusals that stop the search, the wait deadline.
(The transports themselves are exercised for real in tests/integration/test_guest_via.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from vmforge.errors import OwnershipError, VmforgeError
from vmforge.guest.reach import reach_guest
from vmforge.guest.transport import Completed, GuestTimeout, GuestTransport, GuestUnreachable, OsInfo
from vmforge.guest.winrm import CertificateMismatch
from vmforge.spec import RemoteChannel, Spec, parse_spec
from vmforge.state import VmDir


class Standin(GuestTransport):
    """A transport whose wait_ready answers as told (no wire)."""

    def __init__(self, channel: RemoteChannel, error: Exception | None) -> None:
        self.name = f"stand-in {channel.value}"
        self.error = error
        self.closed = False
        self.deadlines: list[float] = []

    def wait_ready(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        if self.error is not None:
            raise self.error

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        return Completed(0, b"", b"")

    def put_file(self, local: Path, remote: str) -> int:
        return 0

    def get_file(self, remote: str, local: Path) -> int:
        return 0

    def os_info(self) -> OsInfo:
        return OsInfo("linux", "x", "x", "1", "6", "x86_64")

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self, behaviour: dict[RemoteChannel, Exception | None], at_open: set[RemoteChannel] = set()) -> None:  # noqa: B006
        self.behaviour = behaviour
        self.at_open = at_open
        self.opened: list[RemoteChannel] = []
        self.transports: dict[RemoteChannel, Standin] = {}

    def __call__(self, spec: Spec, vmdir: VmDir, channel: RemoteChannel, uri: str, origin: str) -> GuestTransport:
        self.opened.append(channel)
        error = self.behaviour[channel]
        if channel in self.at_open and error is not None:
            raise error
        self.transports[channel] = Standin(channel, error)
        return self.transports[channel]


def _spec(*channels: str) -> Spec:
    return parse_spec({"vm": {"name": "vmft-s2w-reach"}, "remote": {"channels": list(channels)}}, label="t")


def _reach(spec: Spec, opener: Opener, **kwargs: object) -> RemoteChannel:
    reached = reach_guest(spec, VmDir("x"), uri="test:///default", origin="t", opener=opener, **kwargs)  # type: ignore[arg-type]
    return reached.channel


A, W, S = RemoteChannel.AGENT, RemoteChannel.WINRM, RemoteChannel.SSH


def test_first_channel_that_answers_in_the_spec_order() -> None:
    opener = Opener({A: GuestUnreachable("no domain"), W: GuestTimeout("quiet"), S: None}, at_open={A})
    assert _reach(_spec("agent", "winrm", "ssh"), opener, via=None) == S
    assert opener.opened == [A, W, S] and opener.transports[W].closed
    opener = Opener({A: None, W: None, S: None})
    assert _reach(_spec("ssh", "agent"), opener, via=None) == S and opener.opened == [S]


def test_via_uses_only_that_channel_and_raises_its_own_error() -> None:
    opener = Opener({A: None, W: GuestTimeout("WinRM did not answer"), S: None})
    with pytest.raises(GuestTimeout, match="WinRM did not answer"):
        _reach(_spec("agent"), opener, via=W)  # not listed in the spec: --via still works
    assert opener.opened == [W] and opener.transports[W].closed


def test_wrong_answers_stop_the_search() -> None:
    opener = Opener({A: CertificateMismatch("not the pinned one"), W: None, S: None})
    with pytest.raises(CertificateMismatch):
        _reach(_spec("agent", "winrm"), opener, via=None)
    assert opener.opened == [A]
    foreign = Opener({A: OwnershipError("vmforge did not create it"), W: None, S: None}, at_open={A})
    with pytest.raises(OwnershipError):
        _reach(_spec("agent", "winrm"), foreign, via=None)


def test_none_answers_names_every_reason() -> None:
    opener = Opener({A: GuestUnreachable("no domain"), W: VmforgeError("no certificate pinned"), S: None}, {A, W})
    with pytest.raises(GuestUnreachable) as info:
        _reach(_spec("agent", "winrm"), opener, via=None)
    assert "agent: no domain; winrm: no certificate pinned" in info.value.message


def test_wait_repeats_rounds_until_the_deadline() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    opener = Opener({A: GuestUnreachable("down"), W: None, S: None}, at_open={A})
    with pytest.raises(GuestUnreachable):
        _reach(_spec("agent"), opener, via=None, deadline=3.5, clock=lambda: now[0], sleep=sleep)
    assert len(opener.opened) == 5 and sleeps == [1.0, 1.0, 1.0, 0.5]  # tries at 0, 1, 2, 3 and 3.5 s: not past it
