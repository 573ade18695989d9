from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest

from tests.ivshmem_support import FakeClock, MiB, make_shm
from vmforge.ivshmem.backing import SharedMemory, create_shm_file, open_shared_memory
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout, PeerLost, StaleSession, VersionMismatch
from vmforge.ivshmem.layout import OFF_GUEST_SESSION, OFF_GUEST_VERSION_MAJOR, OFF_VERSION_MAJOR, GuestState, Producer
from vmforge.ivshmem.messages import MsgType
from vmforge.ivshmem.session import PEER_TIMEOUT, PeerState, Role, Session


@pytest.fixture
def shm(tmp_path: Path) -> SharedMemory:
    return make_shm(tmp_path / "area")


def pair(shm: SharedMemory, clock: FakeClock, seed: int = 1) -> tuple[Session, Session]:
    host = Session.create(shm, 320, 200, clock=clock, rng=random.Random(seed))
    guest = Session.attach(shm, timeout=1, clock=clock, sleep=clock.sleep)
    return host, guest


def test_handshake_and_messages_both_ways(shm: SharedMemory) -> None:
    clock = FakeClock()
    host, guest = pair(shm, clock)
    assert guest.session_id == host.session_id == random.Random(1).getrandbits(63) | 1
    assert host.peer_state() is PeerState.ALIVE
    assert guest.guest_state() is GuestState.ATTACHED
    host.send(MsgType.ECHO, b"to guest")
    guest.send(MsgType.ECHO_REPLY, b"to host")
    assert guest.recv(1).payload == b"to guest"
    assert host.recv(1).payload == b"to host"
    # frames go guest -> host by default
    assert guest.frame_writer is not None and host.frame_reader is not None
    assert host.frame_writer is None and guest.frame_reader is None


def test_frame_producer_can_be_the_host(shm: SharedMemory) -> None:
    clock = FakeClock()
    host = Session.create(shm, 64, 64, frame_producer=Producer.HOST, clock=clock)
    guest = Session.attach(shm, timeout=1, clock=clock)
    assert host.frame_writer is not None and guest.frame_reader is not None


def test_host_waits_for_a_guest_then_times_out(shm: SharedMemory) -> None:
    clock = FakeClock()
    host = Session.create(shm, 64, 64, clock=clock)
    assert host.peer_state() is PeerState.WAITING
    with pytest.raises(ChannelTimeout, match="no guest peer attached"):
        host.wait_for_peer(2.0, sleep=clock.sleep)


def test_guest_waits_for_a_host_session_then_times_out(shm: SharedMemory) -> None:
    clock = FakeClock()
    with pytest.raises(ChannelTimeout, match="no host session appeared"):
        Session.attach(shm, timeout=1.0, clock=clock, sleep=clock.sleep)


def test_peer_loss_by_heartbeat(shm: SharedMemory) -> None:
    clock = FakeClock()
    host, guest = pair(shm, clock)
    for _ in range(20):  # both beat every 100 ms: alive for two seconds
        clock.advance(0.1)
        guest.beat()
        assert host.poll() is PeerState.ALIVE
        host.beat()
        assert guest.poll() is PeerState.ALIVE
    clock.advance(PEER_TIMEOUT - 0.05)  # the guest goes quiet, but not yet for long enough
    assert host.poll() is PeerState.ALIVE
    clock.advance(0.1)
    with pytest.raises(PeerLost, match=r"guest peer heartbeat has not changed for more than 0\.5s"):
        host.poll()
    guest.beat(force=True)  # it comes back
    assert host.poll() is PeerState.ALIVE


def test_guest_notices_a_lost_host(shm: SharedMemory) -> None:
    clock = FakeClock()
    _host, guest = pair(shm, clock)
    clock.advance(1.0)
    with pytest.raises(PeerLost, match="the host heartbeat"):
        guest.recv(0.5)


def test_clean_detach_is_not_a_loss(shm: SharedMemory) -> None:
    clock = FakeClock()
    host, guest = pair(shm, clock)
    guest.close()
    assert host.peer_state() is PeerState.GONE
    host.close()
    assert guest.peer_state() is PeerState.GONE


def test_recreated_session_makes_the_old_one_stale(shm: SharedMemory) -> None:
    clock = FakeClock()
    host, guest = pair(shm, clock, seed=1)
    host.send(MsgType.ECHO, b"old")
    start = clock.now
    new_host = Session.create(shm, 320, 200, clock=clock, rng=random.Random(2), sleep=clock.sleep)
    assert clock.now - start >= 1.0  # it waited for the attached (but silent) old guest to let go
    with pytest.raises(StaleSession, match="replaced by a newer one"):
        guest.poll()
    assert int(shm.u64(OFF_GUEST_SESSION).value) == 0  # the old guest let go
    with pytest.raises(StaleSession):
        host.peer_state()
    # the old guest's attachment does not count for the new session
    assert new_host.peer_state() is PeerState.WAITING
    again = Session.attach(shm, timeout=1, clock=clock)
    assert again.session_id == new_host.session_id
    assert again.try_recv() is None  # the rings were cleared: nothing from the old session leaks
    assert new_host.peer_state() is PeerState.ALIVE


def test_guest_refuses_a_newer_major_version_and_the_host_says_why(shm: SharedMemory) -> None:
    clock = FakeClock()
    host = Session.create(shm, 64, 64, clock=clock)
    struct.pack_into("<HH", shm.buf, OFF_VERSION_MAJOR, 2, 3)  # as a future host would write
    with pytest.raises(VersionMismatch, match=r"the host speaks shared-memory layout version 2\.3"):
        Session.attach(shm, timeout=1, clock=clock)
    with pytest.raises(VersionMismatch, match=r"guest peer speaks .* 1\.1 and refused this session's version 2\.3"):
        host.wait_for_peer(1, sleep=clock.sleep)


def test_host_refuses_a_guest_of_another_major_version(shm: SharedMemory) -> None:
    clock = FakeClock()
    host = Session.create(shm, 64, 64, clock=clock)
    Session.attach(shm, timeout=1, clock=clock)
    struct.pack_into("<HH", shm.buf, OFF_GUEST_VERSION_MAJOR, 3, 0)  # as a future guest would write
    with pytest.raises(VersionMismatch, match=r"the guest peer speaks shared-memory layout version 3\.0"):
        host.peer_state()


def test_an_unknown_guest_state_is_a_clear_error(shm: SharedMemory) -> None:
    host, _guest = pair(shm, FakeClock())
    struct.pack_into("<I", shm.buf, 140, 99)
    with pytest.raises(ChannelError, match="unknown guest_state 99"):
        host.peer_state()


def test_roles(shm: SharedMemory) -> None:
    host, guest = pair(shm, FakeClock())
    assert host.role is Role.HOST and guest.role is Role.GUEST


# --- backing -------------------------------------------------------------------------------


def test_missing_backing_says_start_the_vm(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="does not exist") as info:
        open_shared_memory(tmp_path / "nope")
    assert info.value.hint is not None and "start the VM" in info.value.hint


def test_char_device_backing_needs_a_size_and_maps_it() -> None:
    # /dev/zero is a real char device that supports shared mappings, like /dev/kvmfr0
    with pytest.raises(ChannelError, match="char device"):
        open_shared_memory(Path("/dev/zero"))
    with open_shared_memory(Path("/dev/zero"), size=8 * MiB) as shm:
        assert shm.size == 8 * MiB
        Session.create(shm, 64, 64)


def test_a_regular_file_where_a_kvmfr_device_belongs_is_refused() -> None:
    # what a VM started before the kvmfr module loaded leaves behind (tests run as root)
    fake_dev = Path(f"/dev/vmft-shm-kvmfr-{os.getpid()}")
    try:
        create_shm_file(fake_dev, MiB)
        with pytest.raises(ChannelError, match="regular file, not the kvmfr char device"):
            open_shared_memory(fake_dev)
    finally:
        fake_dev.unlink(missing_ok=True)


def test_shm_files_are_power_of_two_sized(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="not a power of two"):
        create_shm_file(tmp_path / "x", 3 * MiB)
    create_shm_file(tmp_path / "x", 4 * MiB, mode=0o660)
    assert os.stat(tmp_path / "x").st_size == 4 * MiB
