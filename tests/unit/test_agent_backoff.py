"""Retry timing of the agent transport, with an injected clock, sleep and random source."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from vmforge.guest.agent import AgentTransport, backoff
from vmforge.guest.agent_channel import AgentChannel
from vmforge.guest.transport import GuestTimeout, GuestUnreachable


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
