"""Retry timing of the agent transport, with an injected clock, sleep and random source."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from vmforge.guest.agent import AgentTransport, backoff
from vmforge.guest.agent_channel import AgentChannel
from vmforge.guest.transport import GuestCommandError, GuestError, GuestTimeout, GuestUnreachable


def test_backoff_grows_is_capped_and_jittered_within_bounds() -> None:
    delays = list(itertools.islice(backoff(random.Random(1), initial=0.1, maximum=1.0, jitter=0.25), 12))
    assert 0.075 <= delays[0] <= 0.125
    assert all(d <= 1.25 for d in delays)
    assert all(0.75 <= d <= 1.25 for d in delays[6:])  # capped
    assert len(set(delays)) == len(delays)  # jittered: callers do not retry in lockstep


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Unreachable(AgentChannel):
    """A channel whose every attempt fails after costing ``cost`` seconds of the fake clock."""

    name = "unix socket /run/nowhere.sock"

    def __init__(self, time: FakeTime, cost: float) -> None:
        self.time, self.cost, self.calls = time, cost, 0

    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        self.calls += 1
        self.time.now += min(self.cost, timeout)
        raise GuestUnreachable("connection refused")


def test_wait_ready_stops_at_the_deadline_and_names_the_channel() -> None:
    fake = FakeTime()
    channel = Unreachable(fake, cost=0.01)
    transport = AgentTransport(channel, clock=fake.clock, sleep=fake.sleep, rng=random.Random(3), max_poll=1.0)
    with pytest.raises(GuestTimeout) as info:
        transport.wait_ready(30.0)
    assert 30.0 <= fake.now < 31.5
    assert "/run/nowhere.sock" in info.value.message and "connection refused" in info.value.message
    assert max(fake.sleeps) <= 1.25  # bounded
    assert 25 <= channel.calls <= 60  # kept trying, without hammering


def test_a_slow_attempt_never_overshoots_the_deadline() -> None:
    fake = FakeTime()
    channel = Unreachable(fake, cost=100.0)  # each attempt would hang: the per-try timeout bounds it
    transport = AgentTransport(channel, clock=fake.clock, sleep=fake.sleep, rng=random.Random(3), command_timeout=5)
    with pytest.raises(GuestTimeout):
        transport.wait_ready(12.0)
    assert fake.now <= 12.0 + 1e-9


class Scripted(AgentChannel):
    """guest-exec, then guest-exec-status answers (or failures) in the scripted order."""

    name = "unix socket /run/scripted.sock"

    def __init__(self, time: FakeTime, statuses: list[Any]) -> None:
        self.time, self.statuses, self.resets = time, list(statuses), 0

    def command(self, execute: str, arguments: dict[str, Any] | None, timeout: float) -> Any:
        self.time.now += 0.01
        if execute == "guest-exec":
            return {"pid": 42}
        answer = self.statuses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def reset(self) -> None:
        self.resets += 1


def test_a_running_command_survives_a_lost_connection() -> None:
    fake = FakeTime()
    done = {"exited": True, "exitcode": 0, "out-data": "ZG9uZQo="}  # "done\n"
    lost = GuestUnreachable("libvirtd went away")
    channel = Scripted(fake, [{"exited": False}, lost, lost, {"exited": False}, done])
    transport = AgentTransport(channel, clock=fake.clock, sleep=fake.sleep, rng=random.Random(1))
    result = transport.run(["sleep-then-echo"], timeout=30)
    assert (result.rc, result.stdout) == (0, b"done\n")
    assert channel.resets == 2


def test_an_exit_status_lost_with_the_connection_is_a_clear_error() -> None:
    fake = FakeTime()
    # The agent reported the exit while the wire was down, then forgot the pid.
    forgot = GuestCommandError("guest agent refused guest-exec-status: Invalid parameter 'pid'")
    channel = Scripted(fake, [GuestUnreachable("End of file while reading data"), forgot])
    transport = AgentTransport(channel, clock=fake.clock, sleep=fake.sleep, rng=random.Random(1))
    with pytest.raises(GuestError, match="its exit status was lost while the connection was down"):
        transport.run(["true"], timeout=30)


def test_a_connection_that_stays_down_ends_at_the_deadline_naming_why() -> None:
    fake = FakeTime()
    channel = Scripted(fake, [GuestUnreachable("connection refused")] * 10_000)
    transport = AgentTransport(channel, clock=fake.clock, sleep=fake.sleep, rng=random.Random(1))
    with pytest.raises(GuestTimeout, match="the connection was lost: connection refused"):
        transport.run(["sleep", "100"], timeout=5)
    assert 5 <= fake.now < 7
