"""Triple-buffered BGRA frames with seqlock validation.

The frame area holds three buffers of ``pitch * height`` bytes.  Each buffer has a descriptor
whose ``seq`` is odd while the producer writes it and even when it is stable.  ``latest`` names the
newest complete frame as ``(frame_no << 2) | index``; the consumer announces the buffer it is
reading in ``reading`` (index + 1) so the producer writes elsewhere.

Producer: pick a buffer that is neither ``latest`` nor ``reading``; ``seq += 1`` (odd); write
pixels and the descriptor; ``seq += 1`` (even); store ``latest``.
Consumer: load ``latest``; store ``reading``; load ``seq`` (s1, retry if odd); read descriptor and
pixels; load ``seq`` again (s2); if ``s1 != s2`` the frame was overwritten meanwhile: discard,
retry.  A torn frame is therefore never returned; the test suite checks it with a concurrent
writer process and checksums.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from vmforge.ivshmem.backing import SharedMemory
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout
from vmforge.ivshmem.layout import (
    FRAME_DESC,
    FRAME_DESC_OFFSET,
    FRAME_DESC_SIZE,
    OFF_FRAME_LATEST,
    OFF_FRAME_READING,
    Layout,
)

T = TypeVar("T")
FLAG_CRC = 1
MAX_RETRIES = 1000


@dataclass(frozen=True)
class FrameInfo:
    frame_no: int
    index: int
    width: int
    height: int
    pitch: int
    crc32: int | None
    retries: int = 0  # how many torn reads were discarded before this one


class _Frames:
    def __init__(self, shm: SharedMemory, layout: Layout) -> None:
        self.shm = shm
        self.layout = layout
        self._latest = shm.u64(OFF_FRAME_LATEST)
        self._reading = shm.u64(OFF_FRAME_READING)
        self._seq = [shm.u64(self._desc(i)) for i in range(layout.frame_count)]

    @staticmethod
    def _desc(index: int) -> int:
        return FRAME_DESC_OFFSET + index * FRAME_DESC_SIZE

    def buffer(self, index: int) -> memoryview:
        start = self.layout.frame_offset(index)
        return self.shm.buf[start : start + self.layout.frame_bytes]

    def latest_frame_no(self) -> int:
        return int(self._latest.value) >> 2


def reset_frames(shm: SharedMemory, layout: Layout) -> None:
    shm.u64(OFF_FRAME_LATEST).value = 0
    shm.u64(OFF_FRAME_READING).value = 0
    for i in range(layout.frame_count):
        start = FRAME_DESC_OFFSET + i * FRAME_DESC_SIZE
        shm.buf[start : start + FRAME_DESC_SIZE] = bytes(FRAME_DESC_SIZE)


class FrameWriter(_Frames):
    def __init__(self, shm: SharedMemory, layout: Layout) -> None:
        super().__init__(shm, layout)
        self._frame_no = self.latest_frame_no()
        self.last_crc: int | None = None

    def _pick(self) -> int:
        latest = int(self._latest.value)
        avoid = {latest & 3} if latest else set()
        reading = int(self._reading.value)
        if reading:
            avoid.add(reading - 1)
        for offset in range(1, self.layout.frame_count + 1):
            index = ((latest & 3) + offset) % self.layout.frame_count
            if index not in avoid:
                return index
        raise AssertionError("three buffers always leave one free")

    @contextlib.contextmanager
    def frame(self, *, crc: bool = False) -> Iterator[memoryview]:
        """``with writer.frame() as pixels:`` fill ``pixels`` (zero-copy) and publish on exit."""
        index = self._pick()
        seq = self._seq[index]
        start = int(seq.value)
        seq.value = start + 1 if start % 2 == 0 else start + 2  # odd: being written
        pixels = self.buffer(index)
        try:
            yield pixels
            checksum = zlib.crc32(pixels) if crc else 0
            self._frame_no += 1
            _pack_desc(self.shm.buf, self._desc(index), self._frame_no, self.layout, checksum=checksum, crc=crc)
            self.last_crc = checksum if crc else None
        finally:
            pixels.release()
            seq.value = int(seq.value) + 1  # even: stable
        self._latest.value = (self._frame_no << 2) | index

    def write(self, data: bytes | bytearray | memoryview, *, crc: bool = False) -> int:
        """Copy one frame in and publish it; returns its frame number."""
        if len(data) != self.layout.frame_bytes:
            raise ChannelError(f"a frame is {self.layout.frame_bytes} bytes, got {len(data)}")
        with self.frame(crc=crc) as pixels:
            pixels[:] = data
        return self._frame_no


def _pack_desc(buf: memoryview, offset: int, frame_no: int, layout: Layout, *, checksum: int, crc: bool) -> None:
    # seq (the first 8 bytes) is left alone; it is stored through its own 64-bit cell.
    struct.pack_into(
        "<QIIIII",
        buf,
        offset + 8,
        frame_no,
        layout.width,
        layout.height,
        layout.pitch,
        checksum,
        FLAG_CRC if crc else 0,
    )


class FrameReader(_Frames):
    def consume(
        self,
        use: Callable[[memoryview, FrameInfo], T],
        *,
        after: int = 0,
        retries: int = MAX_RETRIES,
    ) -> tuple[FrameInfo, T] | None:
        """Run ``use`` on the newest frame newer than ``after``, zero-copy; None if there is none.

        ``use`` sees the pixels in place.  Its result is returned only if the frame was not
        overwritten while ``use`` ran (checked afterwards); otherwise it runs again on the newer
        frame.  Anything ``use`` keeps must be a copy.
        """
        for attempt in range(retries):
            latest = int(self._latest.value)
            if latest == 0 or latest >> 2 <= after:
                return None
            index = latest & 3
            if index >= self.layout.frame_count:
                raise ChannelError(f"frame index {index} out of range in the shared frame table")
            self._reading.value = index + 1
            try:
                seq = self._seq[index]
                s1 = int(seq.value)
                if s1 & 1:
                    continue
                _, frame_no, width, height, pitch, checksum, flags = FRAME_DESC.unpack_from(
                    self.shm.buf, self._desc(index)
                )
                info = FrameInfo(frame_no, index, width, height, pitch, checksum if flags & FLAG_CRC else None, attempt)
                pixels = self.buffer(index)
                try:
                    result = use(pixels, info)
                finally:
                    pixels.release()
                if int(seq.value) != s1:
                    continue  # overwritten while we looked: discard
            finally:
                self._reading.value = 0
            return info, result
        raise ChannelTimeout(f"no stable frame after {retries} attempts (the producer overwrites every read)")

    def read_into(self, dst: bytearray | memoryview, *, after: int = 0) -> FrameInfo | None:
        """Copy the newest frame newer than ``after`` into ``dst``; None if there is none."""

        def copy(pixels: memoryview, _info: FrameInfo) -> None:
            dst[: len(pixels)] = pixels

        got = self.consume(copy, after=after)
        return None if got is None else got[0]
