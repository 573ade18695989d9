from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ivshmem_support import make_shm
from vmforge.ivshmem.backing import SharedMemory
from vmforge.ivshmem.errors import ChannelError
from vmforge.ivshmem.layout import SLOT_HEADER, QueueEntry
from vmforge.ivshmem.ring import Message, RingConsumer, RingFull, RingProducer, reset_ring


def small_ring(shm: SharedMemory, slots: int = 4, slot_size: int = 64) -> tuple[RingProducer, RingConsumer]:
    entry = QueueEntry(0, 0, 4096, slot_size, slots)  # type: ignore[arg-type]
    reset_ring(shm, entry)
    return RingProducer(shm, entry), RingConsumer(shm, entry)


@pytest.fixture
def shm(tmp_path: Path) -> SharedMemory:
    return make_shm(tmp_path / "ring", 1024 * 1024)


def test_empty_ring_has_nothing(shm: SharedMemory) -> None:
    _, rx = small_ring(shm)
    assert rx.try_recv() is None
    assert rx.drain() == []


def test_full_ring_refuses_until_a_slot_is_freed(shm: SharedMemory) -> None:
    tx, rx = small_ring(shm, slots=4)
    for i in range(4):
        assert tx.try_send(1, bytes([i]))
    assert tx.free_slots() == 0
    assert not tx.try_send(1, b"x")
    with pytest.raises(RingFull, match="4 messages unread"):
        tx.send(1, b"x")
    assert rx.try_recv() == Message(1, b"\x00")
    assert tx.try_send(2, b"late")
    assert [m.payload for m in rx.drain()] == [b"\x01", b"\x02", b"\x03", b"late"]


def test_wrap_around_keeps_order_over_many_laps(shm: SharedMemory) -> None:
    tx, rx = small_ring(shm, slots=4)
    received = []
    for i in range(1000):
        tx.send(7, i.to_bytes(4, "little"), flags=i & 0xFFFF)
        if i % 3 == 2:
            received += rx.drain()
    received += rx.drain()
    assert [int.from_bytes(m.payload, "little") for m in received] == list(range(1000))
    assert all(m.type == 7 for m in received)


def test_oversized_message_is_refused(shm: SharedMemory) -> None:
    tx, _ = small_ring(shm, slot_size=64)
    tx.send(1, bytes(64 - SLOT_HEADER.size))
    with pytest.raises(ChannelError, match="exceeds the slot payload"):
        tx.send(1, bytes(64 - SLOT_HEADER.size + 1))


def test_a_slot_whose_sequence_does_not_match_is_reported(shm: SharedMemory) -> None:
    tx, rx = small_ring(shm)
    tx.send(1, b"ok")
    # a peer that bumps head without writing the slot header breaks the protocol
    shm.u64(4096).value = 2
    assert rx.try_recv() == Message(1, b"ok")
    with pytest.raises(ChannelError, match="inconsistent"):
        rx.try_recv()


def test_endpoints_resume_from_shared_indices(shm: SharedMemory) -> None:
    tx, rx = small_ring(shm)
    tx.send(1, b"a")
    tx.send(1, b"b")
    assert rx.try_recv() == Message(1, b"a")
    entry = tx.entry
    tx2, rx2 = RingProducer(shm, entry), RingConsumer(shm, entry)  # e.g. a restarted process
    tx2.send(1, b"c")
    assert [m.payload for m in rx2.drain()] == [b"b", b"c"]


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.one_of(st.binary(max_size=48).map(lambda b: ("send", b)), st.just(("recv", b""))),
        max_size=120,
    ),
    slots=st.sampled_from([1, 2, 4, 8]),
)
def test_ring_behaves_like_a_bounded_fifo(tmp_path_factory: pytest.TempPathFactory, ops: list, slots: int) -> None:
    shm = make_shm(tmp_path_factory.mktemp("prop") / "ring", 1024 * 1024)
    try:
        tx, rx = small_ring(shm, slots=slots)
        model: collections.deque[bytes] = collections.deque()
        for op, payload in ops:
            if op == "send":
                accepted = tx.try_send(3, payload)
                assert accepted == (len(model) < slots)
                if accepted:
                    model.append(payload)
            else:
                msg = rx.try_recv()
                if model:
                    assert msg == Message(3, model.popleft())
                else:
                    assert msg is None
            assert rx.pending() == len(model)
    finally:
        shm.close()


_PRODUCER = """
import random, sys, time, zlib
from pathlib import Path
from vmforge.ivshmem.backing import open_shared_memory
from vmforge.ivshmem.layout import QueueEntry
from vmforge.ivshmem.ring import RingProducer

shm = open_shared_memory(Path(sys.argv[1]))
tx = RingProducer(shm, QueueEntry(0, 0, 4096, 512, 64))
rng = random.Random(3)
for i in range(int(sys.argv[2])):
    body = i.to_bytes(8, "little") + rng.randbytes(rng.randrange(0, 480))
    payload = zlib.crc32(body).to_bytes(4, "little") + body
    while not tx.try_send(9, payload):
        time.sleep(0)  # yield: on a loaded 2-core machine a pure spin starves the consumer
"""


def test_messages_from_a_concurrent_producer_process_are_never_torn(tmp_path: Path) -> None:
    """A separate interpreter (not a fork of this threaded one) produces while we consume."""
    import subprocess
    import sys
    import time
    import zlib

    shm = make_shm(tmp_path / "ring", 1024 * 1024)
    entry = QueueEntry(0, 0, 4096, 512, 64)  # type: ignore[arg-type]
    reset_ring(shm, entry)
    rx = RingConsumer(shm, entry)
    count = 20000
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _PRODUCER, str(shm.path), str(count)], env=env)
    deadline = time.monotonic() + 300
    try:
        expected = 0
        while expected < count:
            msg = rx.try_recv()
            if msg is None:
                assert proc.poll() is None or rx.pending(), "the producer died early"
                assert time.monotonic() < deadline, f"only {expected} of {count} messages in 300 s"
                time.sleep(0)
                continue
            crc, body = int.from_bytes(msg.payload[:4], "little"), msg.payload[4:]
            assert zlib.crc32(body) == crc, f"message {expected} is torn"
            assert int.from_bytes(body[:8], "little") == expected
            expected += 1
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
