"""PPM (QEMU's screendump) to PNG without an imaging library: decoded back with zlib."""

from __future__ import annotations

import struct
import zlib

import pytest

from vmforge.create.screenshot import is_png, ppm_to_png


def _chunks(png: bytes) -> dict[bytes, bytes]:
    pos, found = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        found[kind] = found.get(kind, b"") + body
        pos += 12 + length
    return found


def test_ppm_pixels_survive_the_conversion() -> None:
    pixels = bytes(range(2 * 3 * 3)) * 1  # 3x2 image, 18 bytes
    png = ppm_to_png(b"P6\n# made by a test\n3 2\n255\n" + pixels)
    assert is_png(png)
    chunks = _chunks(png)
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, color) == (3, 2, 8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert raw == b"\x00" + pixels[:9] + b"\x00" + pixels[9:]
    assert b"IEND" in chunks


@pytest.mark.parametrize("bad", [b"P3\n1 1\n255\n000", b"P6\n2 2\n255\n\x00\x00", b"P6\n1 1\n65535\n\x00" * 2])
def test_bad_ppm_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        ppm_to_png(bad)
