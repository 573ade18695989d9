"""The console as a PNG: libvirt's screenshot API streams a PPM (QEMU's screendump); vmforge
converts it to PNG itself (zlib + the PNG chunk format) so there is no imaging dependency."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from vmforge.errors import VmforgeError
from vmforge.libvirt_conn import libvirt_errors

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ppm_tokens(data: bytes, count: int) -> tuple[list[int], int]:
    """``count`` header integers of a binary PPM (comments skipped) and where the pixels start."""
    values: list[int] = []
    pos = 2
    while len(values) < count:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and data[end : end + 1].isdigit():
            end += 1
        if end == pos:
            raise ValueError("malformed PPM header")
        values.append(int(data[pos:end]))
        pos = end
    return values, pos + 1  # one whitespace byte ends the header


def ppm_to_png(data: bytes) -> bytes:
    if not data.startswith(b"P6"):
        raise ValueError(f"not a binary PPM (starts with {data[:2]!r})")
    (width, height, maxval), start = _ppm_tokens(data, 3)
    if maxval != 255:
        raise ValueError(f"PPM maxval {maxval} is not supported")
    stride = width * 3
    pixels = data[start : start + stride * height]
    if len(pixels) != stride * height:
        raise ValueError("truncated PPM")
    raw = b"".join(b"\x00" + pixels[row * stride : (row + 1) * stride] for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"


def screenshot_png(conn: Any, dom: Any, path: Path) -> Path:
    """Save the domain's screen 0 as ``path`` (PNG)."""
    chunks: list[bytes] = []
    with libvirt_errors(f"taking a screenshot of {dom.name()}"):
        stream = conn.newStream(0)
        mime = dom.screenshot(stream, 0, 0)

        def sink(_stream: Any, data: bytes, _opaque: Any) -> int:
            chunks.append(bytes(data))
            return len(data)

        stream.recvAll(sink, None)
        stream.finish()
    data = b"".join(chunks)
    if data.startswith(PNG_SIGNATURE):
        png = data
    else:
        try:
            png = ppm_to_png(data)
        except ValueError as exc:
            raise VmforgeError(f"the screenshot of {dom.name()} ({mime}) could not be converted: {exc}") from None
    path.write_bytes(png)
    return path
