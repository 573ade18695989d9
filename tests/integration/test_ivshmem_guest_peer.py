"""The C guest peer (built statically with the real gcc) against the Python host side.

Inside a VM the peer maps /sys/bus/pci/devices/<addr>/resource2; here it maps the same kind of
/dev/shm file QEMU would back the device with, so its protocol logic runs for real.  The
across-VM run belongs to the probe guest's integration.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from vmforge.ivshmem.backing import SharedMemory, create_shm_file, open_shared_memory
from vmforge.ivshmem.echo import check_channel
from vmforge.ivshmem.errors import PeerLost, VersionMismatch
from vmforge.ivshmem.guest_peer import build_guest_peer
from vmforge.ivshmem.layout import OFF_VERSION_MAJOR
from vmforge.ivshmem.messages import MsgType
from vmforge.ivshmem.session import PeerState, Session
from vmforge.plan import ivshmem_auto_size

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peer_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = build_guest_peer(tmp_path_factory.mktemp("peer"))
    assert binary.is_file() and os.access(binary, os.X_OK)
    return binary


@pytest.fixture
def shm_file() -> Iterator[Path]:
    path = Path(f"/dev/shm/vmft-shm-peer-{os.getpid()}")
    yield path
    path.unlink(missing_ok=True)


def start_peer(binary: Path, path: Path, idle: float = 20) -> subprocess.Popen[str]:
    return subprocess.Popen([str(binary), str(path), str(idle)], stderr=subprocess.PIPE, text=True)


def open_area(path: Path, width: int, height: int) -> SharedMemory:
    create_shm_file(path, ivshmem_auto_size(width, height))
    return open_shared_memory(path)


def test_the_peer_binary_is_static(peer_binary: Path) -> None:
    """The probe initramfs has no shared libraries for it: no dynamic section, no interpreter."""
    out = subprocess.run(["readelf", "-d", "-l", str(peer_binary)], capture_output=True, text=True, check=True).stdout
    assert "There is no dynamic section" in out
    assert "INTERP" not in out


def test_echo_and_a_4k_frame_with_checksum(peer_binary: Path, shm_file: Path) -> None:
    with open_area(shm_file, 3840, 2160) as shm:
        peer = start_peer(peer_binary, shm_file)
        try:
            report = check_channel(shm, 3840, 2160, peer_timeout=15, echo_count=200, bye=True, rng=random.Random(5))
            assert peer.wait(timeout=15) == 0
        finally:
            peer.kill()
            _, err = peer.communicate(timeout=10)
    assert report.ok, report.to_data()
    assert report.frame_bytes == 3840 * 4 * 2160 and report.frame_crc_ok and report.frame_pattern_ok
    assert "attached to session" in err


def test_peer_reattaches_when_the_host_recreates_the_session(peer_binary: Path, shm_file: Path) -> None:
    with open_area(shm_file, 640, 360) as shm:
        peer = start_peer(peer_binary, shm_file)
        try:
            first = check_channel(shm, 640, 360, peer_timeout=15, echo_count=5, rng=random.Random(1))
            second = check_channel(shm, 640, 360, peer_timeout=15, echo_count=5, bye=True, rng=random.Random(2))
            assert first.ok and second.ok and first.session_id != second.session_id
            assert peer.wait(timeout=15) == 0
        finally:
            peer.kill()
            _, err = peer.communicate(timeout=10)
    assert err.count("attached to session") == 2


def test_peer_refuses_a_newer_layout_version_and_the_host_reports_it(peer_binary: Path, shm_file: Path) -> None:
    with open_area(shm_file, 640, 360) as shm:
        host = Session.create(shm, 640, 360)
        struct.pack_into("<HH", shm.buf, OFF_VERSION_MAJOR, 2, 0)  # as a future host would
        peer = start_peer(peer_binary, shm_file)
        try:
            assert peer.wait(timeout=15) == 4
            with pytest.raises(
                VersionMismatch, match=r"guest peer speaks .* 1\.1 and refused this session's version 2\.0"
            ):
                host.wait_for_peer(5)
        finally:
            peer.kill()
            _, err = peer.communicate(timeout=10)
    assert "layout version 2.0" in err and "refusing" in err


def test_a_killed_peer_is_detected_as_lost(peer_binary: Path, shm_file: Path) -> None:
    with open_area(shm_file, 640, 360) as shm:
        host = Session.create(shm, 640, 360)
        peer = start_peer(peer_binary, shm_file)
        try:
            host.wait_for_peer(15)
            host.send(MsgType.ECHO, b"hi")
            assert host.recv(5).payload == b"hi"
            peer.kill()
            peer.communicate(timeout=10)
            deadline = time.monotonic() + 3
            with pytest.raises(PeerLost):
                while time.monotonic() < deadline:
                    assert host.poll() is PeerState.ALIVE
                    time.sleep(0.05)
        finally:
            peer.kill()


def test_python_and_c_peers_speak_the_same_protocol(shm_file: Path) -> None:
    """The Python echo peer passes the same check (it is the bench's second process)."""
    with open_area(shm_file, 320, 240) as shm:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        peer = subprocess.Popen([sys.executable, "-m", "vmforge.ivshmem.echo", str(shm_file), "20"], env=env)
        try:
            report = check_channel(shm, 320, 240, peer_timeout=20, echo_count=50, bye=True)
            assert peer.wait(timeout=15) == 0
        finally:
            peer.kill()
            peer.wait(timeout=10)
    assert report.ok, report.to_data()
