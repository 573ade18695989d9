"""Message types of layout version 1 and the echo/frame-check payloads.

Types are grouped in ranges (docs/ivshmem-protocol.md): control 0x0001-0x00FF, draw/present
commands 0x0100-0x01FF, input 0x0200-0x02FF.  Version 1 defines the control messages below; the
draw, present and input payloads belong to the compositor and are carried opaquely.
"""

from __future__ import annotations

import random
import struct
from enum import IntEnum


class MsgType(IntEnum):
    PING = 0x0001  # payload echoed back in PONG (latency probes)
    PONG = 0x0002
    ECHO = 0x0003  # payload echoed back in ECHO_REPLY
    ECHO_REPLY = 0x0004
    FRAME_REQUEST = 0x0010  # u64 seed: the frame producer writes the seed's pattern frame
    FRAME_READY = 0x0011  # u64 seed, u64 frame_no, u32 crc32
    BYE = 0x0020  # the peer detaches and stops
    DRAW_FIRST = 0x0100
    DRAW_LAST = 0x01FF
    INPUT_FIRST = 0x0200
    INPUT_LAST = 0x02FF


FRAME_REQUEST = struct.Struct("<Q")
FRAME_READY = struct.Struct("<QQI")
GOLDEN = 2654435761
PATTERN_CHUNK = 65536


def pattern_word(seed: int, index: int) -> int:
    """The 32-bit word at word ``index`` of the seed's pattern frame (padding included)."""
    return (seed & 0xFFFFFFFF) ^ ((index * GOLDEN) & 0xFFFFFFFF)


def fill_pattern(pixels: memoryview, seed: int) -> None:
    """Write the seed's pattern frame into ``pixels`` in bounded chunks (the C peer is far faster)."""
    words = len(pixels) // 4
    base = seed & 0xFFFFFFFF
    for start in range(0, words, PATTERN_CHUNK):
        count = min(PATTERN_CHUNK, words - start)
        chunk = [(base ^ (i * GOLDEN)) & 0xFFFFFFFF for i in range(start, start + count)]
        struct.pack_into(f"<{count}I", pixels, start * 4, *chunk)


def pattern_mismatch(pixels: memoryview, seed: int, samples: int, rng: random.Random) -> int | None:
    """Check ``samples`` random words of a pattern frame; the first wrong word index or None."""
    words = len(pixels) // 4
    for index in [*sorted(rng.randrange(words) for _ in range(samples)), 0, words - 1]:
        (value,) = struct.unpack_from("<I", pixels, index * 4)
        if value != pattern_word(seed, index):
            return index
    return None
