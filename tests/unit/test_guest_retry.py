"""The shared wait loop and the shared copy checks of all transports."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vmforge.guest.retry import retry_until
from vmforge.guest.transport import (
    CopyVerificationFailed,
    GuestError,
    GuestTimeout,
    GuestUnreachable,
    accept_download,
    check_upload,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.tries: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait(clock: Clock, error: GuestError, deadline: float, **kwargs: object) -> None:
    def attempt() -> None:
        clock.tries.append(clock.now)
        clock.now += 0.25  # each try costs time
        raise error

    retry_until(
        attempt,
        deadline=deadline,
        delays=itertools.repeat(1.0),
        clock=lambda: clock.now,
        sleep=clock.sleep,
        timed_out=lambda last: GuestTimeout(f"gave up ({last.message if last else '-'})"),
        **kwargs,  # type: ignore[arg-type]
    )


def test_retries_until_the_deadline_then_names_the_last_error() -> None:
    clock = Clock()
    with pytest.raises(GuestTimeout, match=r"gave up \(refused\)"):
        _wait(clock, GuestUnreachable("refused"), 3.0)
    assert clock.tries == [0.0, 1.25, 2.5] and clock.now == 3.0  # none starts at or after 3.0


def test_first_try_happens_even_past_the_deadline_and_fatal_errors_pass() -> None:
    clock = Clock()
    clock.now = 10.0
    with pytest.raises(GuestTimeout):
        _wait(clock, GuestUnreachable("refused"), 5.0)
    assert clock.tries == [10.0]
    clock = Clock()
    with pytest.raises(GuestError, match="wrong password"):
        _wait(clock, GuestError("wrong password"), 30.0, fatal=(GuestError,))
    assert clock.tries == [0.0]
    with pytest.raises(GuestError, match="not retryable"):
        _wait(Clock(), GuestError("not retryable"), 30.0, retry_on=(GuestUnreachable,))


def test_download_is_kept_only_when_the_hashes_agree(tmp_path: Path) -> None:
    part, final = tmp_path / ".f.vmforge-part", tmp_path / "f"
    part.write_bytes(b"x")
    accept_download(part, "C:\\f", sha256="aa", guest_sha256="aa", final=final)
    assert final.read_bytes() == b"x" and not part.exists()
    part.write_bytes(b"y")
    with pytest.raises(CopyVerificationFailed, match=r"arrived with SHA-256 bb, but the guest hashes it to nothing"):
        accept_download(part, "C:\\f", sha256="bb", guest_sha256=None, final=final)
    assert not part.exists() and final.read_bytes() == b"x"
    with pytest.raises(CopyVerificationFailed, match="in the guest hashes to cc, not dd"):
        check_upload("C:\\f", guest_sha256="cc", host_sha256="dd")
    check_upload("C:\\f", guest_sha256="dd", host_sha256="dd")
