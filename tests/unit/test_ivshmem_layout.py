from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from tests.ivshmem_support import MiB, make_shm
from vmforge.ivshmem import layout as L
from vmforge.ivshmem.errors import ChannelError, VersionMismatch
from vmforge.ivshmem.layout import Direction, Layout, Producer, check_version, frame_pitch
from vmforge.plan import ivshmem_auto_size

DOC = Path(__file__).resolve().parents[2] / "docs" / "ivshmem-protocol.md"


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (2560, 1440), (3840, 2160), (5120, 2880), (7680, 4320)])
def test_three_frames_fit_the_auto_size(width: int, height: int) -> None:
    size = ivshmem_auto_size(width, height)
    layout = Layout.plan(size, width, height)
    end = layout.frame_offset(2) + layout.frame_bytes
    assert end <= size
    assert layout.frame_offset(0) == 4 * MiB
    assert layout.pitch == frame_pitch(width) and layout.pitch % 256 == 0
    # the queues sit between the header and the frames, without overlapping
    h2g, g2h = layout.queue(Direction.HOST_TO_GUEST), layout.queue(Direction.GUEST_TO_HOST)
    assert L.HEADER_SIZE <= h2g.offset < h2g.offset + h2g.region_size <= g2h.offset
    assert g2h.offset + g2h.region_size <= layout.frames_offset


def test_too_small_area_is_refused_with_the_auto_size_hint() -> None:
    with pytest.raises(ChannelError, match="too small") as info:
        Layout.plan(64 * MiB, 3840, 2160)
    assert info.value.hint is not None and "128 MiB" in info.value.hint


def test_layout_round_trips_through_the_header(tmp_path: Path) -> None:
    shm = make_shm(tmp_path / "area")
    layout = Layout.plan(shm.size, 320, 200, Producer.HOST)
    layout.write(shm.buf)
    assert Layout.read(shm.buf, shm.size) == layout


def test_malformed_header_is_refused(tmp_path: Path) -> None:
    shm = make_shm(tmp_path / "area")
    layout = Layout.plan(shm.size, 320, 200)
    layout.write(shm.buf)
    struct.pack_into("<I", shm.buf, L.QUEUE_TABLE_OFFSET + 20, 1000)  # slot count not a power of two
    with pytest.raises(ChannelError, match="queue 0"):
        Layout.read(shm.buf, shm.size)
    layout.write(shm.buf)
    with pytest.raises(ChannelError, match="mapped"):
        Layout.read(shm.buf, shm.size // 2)


def test_version_check_names_both_versions() -> None:
    check_version(L.VERSION_MAJOR, 7, "the host")  # minor versions are compatible
    with pytest.raises(
        VersionMismatch, match=r"the host speaks shared-memory layout version 2\.0, this side speaks 1\.1"
    ):
        check_version(2, 0, "the host")


def test_protocol_document_matches_the_constants() -> None:
    """Every `| offset | name |` row of the header table in the doc matches layout.py."""
    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", text, flags=re.MULTILINE)
    assert len(rows) >= 18
    for offset, name in rows:
        constant = getattr(L, f"OFF_{name.upper()}")
        assert constant == int(offset), f"{name}: doc says {offset}, layout.py says {constant}"
    assert f"`{L.MAGIC.decode('ascii').rstrip(chr(0))}\\0`" in text
    for value in (L.SLOT_SIZE, L.SLOT_COUNT, L.QUEUE_TABLE_OFFSET, L.FRAME_TABLE_OFFSET, L.FRAME_DESC_OFFSET):
        assert str(value) in text
