"""Which guest channel create drives, and what verify says about the other listed channels
before they are set up (no daemon, no guest: these decisions happen before any connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmforge.create.pipeline import Create
from vmforge.guest.remote_access import PIN_WINRM, set_pin
from vmforge.guest.transport import GuestError
from vmforge.spec import RemoteChannel, parse_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


def _create(tmp_path: Path, **remote: Any) -> Create:
    data = {"vm": {"name": "vmft-s2c-unit"}, "windows": {"family": "11"}, "remote": remote}
    spec = parse_spec(data, label="test")
    return Create(spec, None, reporter=Reporter(quiet=True), vm_dir=VmDir("vmft-s2c-unit", root=tmp_path))


def test_the_first_listed_channel_is_the_one_create_uses(tmp_path: Path) -> None:
    assert _create(tmp_path)._channel() is RemoteChannel.AGENT  # default: agent, winrm
    assert _create(tmp_path, channels=["winrm", "agent"])._channel() is RemoteChannel.WINRM
    probe = Create(
        parse_spec({"os": "probe", "remote": {"channels": ["ssh"]}}, label="t"),
        None,
        reporter=Reporter(quiet=True),
        vm_dir=VmDir("p", root=tmp_path),
    )
    assert probe._channel() is RemoteChannel.AGENT  # the probe has only its agent


def test_channels_not_set_up_yet_are_reported_not_checked(tmp_path: Path) -> None:
    job = _create(tmp_path, channels=["agent", "winrm", "ssh"])
    assert job._verify_other_channels() == {
        "winrm": "not checked: no WinRM certificate pinned ('vmforge remote pin vmft-s2c-unit')",
        "ssh": "not checked: no SSH host key recorded yet",
    }


def test_a_pinned_channel_is_checked_for_real(tmp_path: Path) -> None:
    """Once pinned, verify must reach the channel: with nothing listening it fails (it does not
    report the channel as fine)."""
    job = _create(tmp_path, channels=["agent", "winrm"], address="127.0.0.1", winrm_port=9, connect_timeout="1s")
    set_pin(job.vm_dir, PIN_WINRM, "00" * 32)
    job.spec = job.spec.model_copy(update={"timeouts": job.spec.timeouts.model_copy(update={"agent": 2.0})})
    with pytest.raises(GuestError, match="did not answer in time"):
        job._verify_other_channels()
