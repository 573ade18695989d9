"""Single-producer/single-consumer message rings in shared memory.

A ring is a control block (``head`` on one cache line, ``tail`` on the next) followed by
``slot_count`` fixed-size slots.  ``head`` counts messages ever published, ``tail`` messages ever
consumed; both only grow (64-bit, never wrap in practice).  Slot ``i % slot_count`` holds
message ``i``.

Ordering (docs/ivshmem-protocol.md, "Memory ordering"):
- producer: write payload, then the slot header with ``seq = i + 1``, then store ``head = i + 1``
  (release);
- consumer: load ``head`` (acquire); for each ``tail < head`` check the slot's ``seq == tail + 1``,
  copy the message out, then store ``tail + 1`` (release) to give the slot back.

CPython does the stores in program order through single aligned 64-bit accesses (ctypes
cells); on x86-64 (TSO) that is release/acquire.  The C peer uses explicit atomics.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vmforge.ivshmem.backing import SharedMemory
from vmforge.ivshmem.errors import ChannelError
from vmforge.ivshmem.layout import CACHE_LINE, RING_CONTROL_SIZE, SLOT_HEADER, QueueEntry


@dataclass(frozen=True)
class Message:
    type: int
    payload: bytes
    flags: int = 0


class RingFull(ChannelError):
    """The consumer has not freed a slot; the message was not sent."""


class _Ring:
    def __init__(self, shm: SharedMemory, entry: QueueEntry) -> None:
        self.shm = shm
        self.entry = entry
        self.slot_count = entry.slot_count
        self.slot_size = entry.slot_size
        self.max_payload = entry.slot_size - SLOT_HEADER.size
        self._head = shm.u64(entry.offset)
        self._tail = shm.u64(entry.offset + CACHE_LINE)
        self._slots = entry.offset + RING_CONTROL_SIZE

    def slot_offset(self, index: int) -> int:
        return self._slots + (index & (self.slot_count - 1)) * self.slot_size

    def pending(self) -> int:
        return int(self._head.value - self._tail.value)


def reset_ring(shm: SharedMemory, entry: QueueEntry) -> None:
    """Empty the ring (the host does this when it creates a session, before publishing it)."""
    shm.u64(entry.offset).value = 0
    shm.u64(entry.offset + CACHE_LINE).value = 0
    start = entry.offset + RING_CONTROL_SIZE
    shm.buf[start : start + entry.slot_size * entry.slot_count] = bytes(entry.slot_size * entry.slot_count)


class RingProducer(_Ring):
    def __init__(self, shm: SharedMemory, entry: QueueEntry) -> None:
        super().__init__(shm, entry)
        self._next = int(self._head.value)

    def free_slots(self) -> int:
        return self.slot_count - (self._next - int(self._tail.value))

    def try_send(self, msg_type: int, payload: bytes | bytearray | memoryview, flags: int = 0) -> bool:
        """Publish one message; False when the ring is full (nothing written)."""
        size = len(payload)
        if size > self.max_payload:
            raise ChannelError(f"message of {size} bytes exceeds the slot payload of {self.max_payload}")
        index = self._next
        if index - int(self._tail.value) >= self.slot_count:
            return False
        offset = self.slot_offset(index)
        body = offset + SLOT_HEADER.size
        self.shm.buf[body : body + size] = payload
        SLOT_HEADER.pack_into(self.shm.buf, offset, size, msg_type, flags, index + 1)
        self._next = index + 1
        self._head.value = self._next  # publish: payload and slot header are already stored
        return True

    def send(self, msg_type: int, payload: bytes | bytearray | memoryview, flags: int = 0) -> None:
        if not self.try_send(msg_type, payload, flags):
            raise RingFull(f"queue {self.entry.queue_id} is full ({self.slot_count} messages unread)")


class RingConsumer(_Ring):
    def __init__(self, shm: SharedMemory, entry: QueueEntry) -> None:
        super().__init__(shm, entry)
        self._next = int(self._tail.value)

    def try_recv(self) -> Message | None:
        index = self._next
        if int(self._head.value) <= index:
            return None
        offset = self.slot_offset(index)
        size, msg_type, flags, seq = SLOT_HEADER.unpack_from(self.shm.buf, offset)
        if seq != index + 1 or size > self.max_payload:
            raise ChannelError(
                f"queue {self.entry.queue_id} slot {index} is inconsistent (seq {seq}, length {size})",
                hint="the peer broke the ring protocol or the session was re-created; re-attach",
            )
        body = offset + SLOT_HEADER.size
        payload = bytes(self.shm.buf[body : body + size])
        self._next = index + 1
        self._tail.value = self._next  # give the slot back only after copying it out
        return Message(msg_type, payload, flags)

    def drain(self) -> list[Message]:
        out = []
        while (msg := self.try_recv()) is not None:
            out.append(msg)
        return out


def pack_u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)
