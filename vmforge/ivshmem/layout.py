"""Layout version 1 of the shared-memory area: every offset and size, in one place.

docs/ivshmem-protocol.md describes the same numbers for other implementations (the Windows
side, the C guest peer in ``guest/``); a unit test checks that the document's header table
matches the constants here.  All integers are little-endian.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

from vmforge.ivshmem.errors import ChannelError, VersionMismatch
from vmforge.plan import IVSHMEM_OVERHEAD, ivshmem_auto_size

MAGIC = b"VMFGSHM\x00"
VERSION_MAJOR = 1
VERSION_MINOR = 1  # 1.1 added host_doorbell_id

HEADER_SIZE = 4096
CACHE_LINE = 64
PAGE = 4096

# --- header fields (offset, struct format) ---------------------------------------------------
OFF_MAGIC = 0  # 8s
OFF_VERSION_MAJOR = 8  # H
OFF_VERSION_MINOR = 10  # H
OFF_HEADER_SIZE = 12  # I
OFF_TOTAL_SIZE = 16  # Q
OFF_SESSION_ID = 24  # Q   written LAST by the host when it creates a session
OFF_HOST_FEATURES = 32  # Q
OFF_HOST_STATE = 40  # I
OFF_HOST_DOORBELL_ID = 44  # I   the host's ivshmem peer id + 1 (the Doorbell register target); 0: none
OFF_QUEUE_COUNT = 48  # I
OFF_QUEUE_TABLE = 52  # I   offset of the queue table (from the start of the area)
OFF_FRAME_TABLE = 56  # I   offset of the frame table
OFF_HOST_HEARTBEAT = 64  # Q   own cache line
OFF_GUEST_SESSION = 128  # Q   the session id the guest attached to, written LAST by the guest
OFF_GUEST_VERSION_MAJOR = 136  # H
OFF_GUEST_VERSION_MINOR = 138  # H
OFF_GUEST_STATE = 140  # I
OFF_GUEST_FEATURES = 144  # Q
OFF_GUEST_HEARTBEAT = 192  # Q   own cache line

QUEUE_TABLE_OFFSET = 256
QUEUE_ENTRY_SIZE = 32
MAX_QUEUES = 8
# queue entry: id u32, direction u32, offset u64, slot_size u32, slot_count u32, reserved u64
QUEUE_ENTRY = struct.Struct("<IIQIIQ")

FRAME_TABLE_OFFSET = 512
# frame table: count u32, format u32, width u32, height u32, pitch u32, producer u32,
#              buffer_offset u64, buffer_stride u64
FRAME_TABLE = struct.Struct("<IIIIIIQQ")
OFF_FRAME_LATEST = FRAME_TABLE_OFFSET + 64  # Q  (frame_no << 2) | buffer index, 0 = none yet
OFF_FRAME_READING = FRAME_TABLE_OFFSET + 128  # Q  consumer: buffer index + 1 it is reading, 0 = none
FRAME_DESC_OFFSET = FRAME_TABLE_OFFSET + 192
FRAME_DESC_SIZE = 64
# frame descriptor: seq u64 (odd while written), frame_no u64, width u32, height u32, pitch u32,
#                   crc32 u32, flags u32
FRAME_DESC = struct.Struct("<QQIIIII")
FRAME_COUNT = 3

QUEUES_OFFSET = PAGE
RING_CONTROL_SIZE = 2 * CACHE_LINE  # head on one line, tail on the next
SLOT_SIZE = 512
SLOT_COUNT = 2048
SLOT_HEADER = struct.Struct("<IHHQ")  # length, type, flags, seq
MAX_PAYLOAD = SLOT_SIZE - SLOT_HEADER.size
FRAMES_OFFSET = IVSHMEM_OVERHEAD  # frame buffers start at 4 MiB (the size rule's overhead)


class HostState(IntEnum):
    NONE = 0
    READY = 1
    CLOSED = 2


class GuestState(IntEnum):
    NONE = 0
    ATTACHED = 1
    DETACHED = 2
    REFUSED_VERSION = 3


class Direction(IntEnum):
    HOST_TO_GUEST = 0
    GUEST_TO_HOST = 1


class Producer(IntEnum):
    HOST = 0
    GUEST = 1


class PixelFormat(IntEnum):
    BGRA8 = 1


class Feature(IntEnum):
    """Feature bits (host_features offered, guest_features accepted)."""

    DOORBELL = 1 << 0  # the peer may be woken with ivshmem-doorbell interrupts
    FRAME_CRC = 1 << 1  # frame descriptors carry a CRC-32 of the frame bytes


@dataclass(frozen=True)
class QueueEntry:
    queue_id: int
    direction: Direction
    offset: int
    slot_size: int
    slot_count: int

    @property
    def region_size(self) -> int:
        return RING_CONTROL_SIZE + self.slot_size * self.slot_count


@dataclass(frozen=True)
class Layout:
    total_size: int
    width: int
    height: int
    pitch: int
    frame_producer: Producer
    queues: tuple[QueueEntry, ...]
    frame_count: int = FRAME_COUNT
    frames_offset: int = FRAMES_OFFSET

    @property
    def frame_bytes(self) -> int:
        return self.pitch * self.height

    @property
    def frame_stride(self) -> int:
        return self.frame_bytes

    def frame_offset(self, index: int) -> int:
        return self.frames_offset + index * self.frame_stride

    def queue(self, direction: Direction) -> QueueEntry:
        for entry in self.queues:
            if entry.direction == direction:
                return entry
        raise ChannelError(f"the layout has no {direction.name.lower()} queue")

    @classmethod
    def plan(cls, total_size: int, width: int, height: int, frame_producer: Producer = Producer.GUEST) -> Layout:
        """The version-1 layout for an area of ``total_size`` bytes and a WxH frame."""
        if width <= 0 or height <= 0:
            raise ChannelError(f"frame size {width}x{height} is not positive")
        pitch = frame_pitch(width)
        queues = []
        offset = QUEUES_OFFSET
        for queue_id, direction in enumerate(Direction):
            entry = QueueEntry(queue_id, direction, offset, SLOT_SIZE, SLOT_COUNT)
            queues.append(entry)
            offset += _round_up(entry.region_size, PAGE)
        assert offset <= FRAMES_OFFSET
        layout = cls(total_size, width, height, pitch, frame_producer, tuple(queues))
        needed = layout.frames_offset + FRAME_COUNT * layout.frame_stride
        if needed > total_size:
            raise ChannelError(
                f"a {total_size // 1024**2} MiB shared-memory area is too small for three "
                f"{width}x{height} frames (needs {needed} bytes)",
                hint=f"use size 'auto' ({ivshmem_auto_size(width, height) // 1024**2} MiB for this resolution)",
            )
        return layout

    def write(self, buf: memoryview) -> None:
        """Write every static field except magic, version and session id (see Session.create)."""
        struct.pack_into("<I", buf, OFF_HEADER_SIZE, HEADER_SIZE)
        struct.pack_into("<Q", buf, OFF_TOTAL_SIZE, self.total_size)
        struct.pack_into("<I", buf, OFF_QUEUE_COUNT, len(self.queues))
        struct.pack_into("<I", buf, OFF_QUEUE_TABLE, QUEUE_TABLE_OFFSET)
        struct.pack_into("<I", buf, OFF_FRAME_TABLE, FRAME_TABLE_OFFSET)
        for i, q in enumerate(self.queues):
            QUEUE_ENTRY.pack_into(
                buf,
                QUEUE_TABLE_OFFSET + i * QUEUE_ENTRY_SIZE,
                q.queue_id,
                q.direction,
                q.offset,
                q.slot_size,
                q.slot_count,
                0,
            )
        FRAME_TABLE.pack_into(
            buf,
            FRAME_TABLE_OFFSET,
            self.frame_count,
            PixelFormat.BGRA8,
            self.width,
            self.height,
            self.pitch,
            self.frame_producer,
            self.frames_offset,
            self.frame_stride,
        )

    @classmethod
    def read(cls, buf: memoryview, mapped_size: int) -> Layout:
        """Read and sanity-check a layout a host wrote (the caller checked magic and version)."""
        (total_size,) = struct.unpack_from("<Q", buf, OFF_TOTAL_SIZE)
        if total_size > mapped_size:
            raise ChannelError(
                f"the header says the area is {total_size} bytes but only {mapped_size} are mapped",
                hint="the host and this peer map different files or sizes",
            )
        (queue_count,) = struct.unpack_from("<I", buf, OFF_QUEUE_COUNT)
        (queue_table,) = struct.unpack_from("<I", buf, OFF_QUEUE_TABLE)
        (frame_table,) = struct.unpack_from("<I", buf, OFF_FRAME_TABLE)
        if queue_count > MAX_QUEUES or queue_table != QUEUE_TABLE_OFFSET or frame_table != FRAME_TABLE_OFFSET:
            raise ChannelError("the shared-memory header's tables are malformed")
        queues = []
        for i in range(queue_count):
            qid, direction, offset, slot_size, slot_count, _ = QUEUE_ENTRY.unpack_from(
                buf, QUEUE_TABLE_OFFSET + i * QUEUE_ENTRY_SIZE
            )
            entry = QueueEntry(qid, Direction(direction), offset, slot_size, slot_count)
            if (
                slot_count == 0
                or slot_count & (slot_count - 1)
                or slot_size < SLOT_HEADER.size
                or offset + entry.region_size > total_size
            ):
                raise ChannelError(f"queue {qid} in the shared-memory header is malformed")
            queues.append(entry)
        count, fmt, width, height, pitch, producer, frames_offset, stride = FRAME_TABLE.unpack_from(
            buf, FRAME_TABLE_OFFSET
        )
        if fmt != PixelFormat.BGRA8 or count != FRAME_COUNT or pitch < width * 4 or stride < pitch * height:
            raise ChannelError("the shared-memory frame table is malformed")
        if frames_offset + count * stride > total_size:
            raise ChannelError("the shared-memory frame buffers run past the end of the area")
        return cls(total_size, width, height, pitch, Producer(producer), tuple(queues), count, frames_offset)


def frame_pitch(width: int) -> int:
    """Bytes per frame row: BGRA rows padded to a multiple of 256 bytes."""
    return math.ceil(width * 4 / 256) * 256


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) // unit * unit


def check_version(major: int, minor: int, who: str) -> None:
    if major != VERSION_MAJOR:
        raise VersionMismatch(
            f"{who} speaks shared-memory layout version {major}.{minor}, this side speaks "
            f"{VERSION_MAJOR}.{VERSION_MINOR}; refusing to attach",
            hint="update the older side so both speak the same major layout version",
        )
