"""`vmforge channel check` against the C guest peer running as a second host process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmforge.ivshmem.backing import create_shm_file
from vmforge.ivshmem.guest_peer import build_guest_peer
from vmforge.plan import ivshmem_auto_size

pytestmark = pytest.mark.integration


@pytest.fixture
def shm_file() -> Iterator[Path]:
    path = Path(f"/dev/shm/vmft-shm-cli-{os.getpid()}")
    create_shm_file(path, ivshmem_auto_size(1280, 720))
    yield path
    path.unlink(missing_ok=True)


def test_channel_check_passes_against_the_c_peer(vmforge: Any, shm_file: Path, tmp_path: Path) -> None:
    binary = build_guest_peer(tmp_path / "peer")
    peer = subprocess.Popen([str(binary), str(shm_file), "30"], stderr=subprocess.PIPE, text=True)
    try:
        result = vmforge("channel", "check", "probe", "--shm", str(shm_file), "--resolution", "1280x720", "--json")
        assert result.code == 0, result.stderr
        data = result.json()
        assert data["ok"] is True and data["echo"] == {"messages": 64, "ok": True}
        assert data["frame"] == {"bytes": 1280 * 4 * 720, "crc_ok": True, "pattern_ok": True}
        # human output, and a second check: the peer follows the new session
        result = vmforge("channel", "check", "probe", "--shm", str(shm_file), "--resolution", "1280x720")
        assert result.code == 0, result.stderr
        assert result.stdout.startswith("probe: channel ok (64 echoes, 1280x720 frame")
    finally:
        peer.kill()
        peer.communicate(timeout=10)


def test_channel_check_from_the_spec_without_a_guest_peer_times_out(vmforge: Any, tmp_path: Path) -> None:
    name = f"vmft-shm-spec-{os.getpid()}"
    shm = Path(f"/dev/shm/vmforge-{name}")
    create_shm_file(shm, ivshmem_auto_size(1920, 1080))
    try:
        result = vmforge("channel", "check", name, "--set", "ivshmem.enabled=true", "--timeout", "1", "--json")
        assert result.code == 1
        error = result.json()["error"]
        assert "no guest peer attached" in error["message"] and str(shm) in error["message"]
        assert "guest peer" in error["hint"]
    finally:
        shm.unlink(missing_ok=True)
