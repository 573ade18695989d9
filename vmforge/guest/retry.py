"""Bounded, jittered exponential backoff, and the one wait-until-deadline loop built on it.

Every transport's ``wait_ready`` is this loop: try, and on a retryable error wait a little
longer each time (capped, jittered so several clients do not retry in lockstep) until the
deadline; then raise the transport's own timeout error naming the last failure.  Errors that
waiting cannot fix (wrong credentials, a certificate or host key that is not the pinned one)
pass straight through.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import TypeVar

from vmforge.guest.transport import GuestError, GuestTimeout

T = TypeVar("T")


def backoff(
    rng: random.Random, *, initial: float = 0.05, maximum: float = 1.0, factor: float = 2.0, jitter: float = 0.25
) -> Iterator[float]:
    """Delays initial, initial*factor, … capped at ``maximum``, each ±``jitter`` (fraction) random."""
    delay = initial
    while True:
        yield delay * (1.0 + rng.uniform(-jitter, jitter))
        delay = min(maximum, delay * factor)


def retry_until(
    attempt: Callable[[], T],
    *,
    deadline: float,
    delays: Iterator[float],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timed_out: Callable[[GuestError | None], GuestTimeout],
    retry_on: tuple[type[GuestError], ...] = (GuestError,),
    fatal: tuple[type[GuestError], ...] = (),
) -> T:
    """``attempt()``'s result, retried on ``retry_on`` errors (not ``fatal`` ones) with
    ``delays`` between tries.  The first try always happens; no later one starts at or after
    ``deadline``: then ``timed_out(last error)`` is raised."""
    while True:
        try:
            return attempt()
        except fatal:
            raise
        except retry_on as exc:
            last = exc
        remaining = deadline - clock()
        if remaining > 0:
            sleep(max(0.0, min(next(delays), remaining)))
        if clock() >= deadline:
            raise timed_out(last)
