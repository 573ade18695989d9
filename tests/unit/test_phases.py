"""The phase marker grammar and the serial stream reader, on byte streams shaped like real ones."""

from __future__ import annotations

import itertools

import pytest

from vmforge.media.phases import (
    MARKER,
    PhaseMarker,
    PhaseReader,
    clean_line,
    format_marker,
    parse_line,
    read_phases,
)

# What a q35/SeaBIOS + Linux boot really puts on ttyS0 before and between markers (shape copied
# from a probe boot: SeaBIOS banner with escapes, kernel printk with \r\n line ends).
SEABIOS = (
    b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n"
    b"\r\niPXE (https://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+7EFD2E00+7EF32E00 CA00\r\n"
    b"Press Ctrl-B to configure iPXE (PCI 00:02.0)...\r                                   \r\n"
    b"Booting from ROM..\r\n\x1b[0m"
)
KERNEL = (
    b"[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)\r\n"
    b"[    0.912345] virtio_console virtio1: ...\r\n"
)


def clock_from(values: list[float]):
    it = iter(values)
    return lambda: next(it)


def test_format_and_parse_round_trip() -> None:
    line = format_marker("pe-start", build="22631", arch="amd64")
    assert line == f"{MARKER} pe-start build=22631 arch=amd64"
    assert parse_line(line) == PhaseMarker("pe-start", {"build": "22631", "arch": "amd64"})


@pytest.mark.parametrize(
    ("phase", "fields"),
    [("PE-Start", {}), ("pe start", {}), ("ok", {"K": "v"}), ("ok", {"k": ""})],
)
def test_emitter_refuses_what_the_parser_could_not_read(phase: str, fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="phase"):
        format_marker(phase, **fields)


def test_clean_line_strips_escapes_and_redraws() -> None:
    assert clean_line("\x1b[1;32mhello\x1b[0m\r") == "hello"
    assert clean_line("10%\r20%\r100%") == "100%"
    assert clean_line("\x1b]0;title\x07text") == "text"


def test_marker_after_kernel_noise_on_the_same_line() -> None:
    raw = "[    3.1] random: crng init done" + MARKER + " probe-agent port=vport1p1"
    assert parse_line(raw) == PhaseMarker("probe-agent", {"port": "vport1p1"})


def test_marker_overdrawn_by_a_progress_redraw_still_counts() -> None:
    assert parse_line(f"{MARKER} pe-drivers\r  55%  ") == PhaseMarker("pe-drivers")


def test_garbled_markers_are_ignored_not_half_read() -> None:
    assert parse_line(f"{MARKER} pe-start build") is None  # torn key=value
    assert parse_line(f"{MARKER} PE-START") is None
    assert parse_line("VMFORGE-PHAS pe-start") is None
    assert parse_line("") is None


def test_reader_on_a_boot_stream_cut_at_every_size() -> None:
    stream = (
        SEABIOS
        + KERNEL
        + f"{MARKER} probe-init\r\n".encode()
        + b"[    1.2] sr 0:0:0:0: [sr0] scsi3-mmc drive\r\n"
        + f"{MARKER} probe-media cds=2\r\n".encode()
        + f"{MARKER} probe-ready".encode()  # last line without newline: counted at close()
    )
    for size in (1, 2, 3, 7, 64, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        events = list(read_phases(chunks, PhaseReader(clock=itertools.count(100.0).__next__)))
        assert [(e.phase, e.fields) for e in events] == [
            ("probe-init", {}),
            ("probe-media", {"cds": "2"}),
            ("probe-ready", {}),
        ], size
        assert [e.timestamp for e in events] == [100.0, 101.0, 102.0]


def test_partial_line_is_not_an_event_until_complete() -> None:
    reader = PhaseReader(clock=lambda: 5.0)
    assert reader.feed(f"{MARKER} setup-st".encode()) == []
    events = reader.feed(b"art\n")
    assert [e.phase for e in events] == ["setup-start"]


def test_restarts_count_boots() -> None:
    reader = PhaseReader(clock=clock_from([1.0, 2.0, 3.0, 4.0, 5.0]))
    stream = (
        f"{MARKER} pe-start\n{MARKER} pe-drivers\n".encode()
        + SEABIOS  # the guest rebooted
        + f"{MARKER} pe-start\n{MARKER} setup-start\n{MARKER} specialize\n".encode()
    )
    events = reader.feed(stream)
    assert [(e.phase, e.boot) for e in events] == [
        ("pe-start", 0),
        ("pe-drivers", 0),
        ("pe-start", 1),
        ("setup-start", 1),
        ("specialize", 1),
    ]
    assert reader.boot == 1


def test_endless_noise_is_bounded_and_a_marker_after_it_still_parses() -> None:
    reader = PhaseReader(clock=lambda: 0.0, max_line=1024)
    for _ in range(100):
        reader.feed(b"\x1b[2K\r" + b"#" * 500)
    assert len(reader._buffer) <= 1024
    events = reader.feed(f"\r{MARKER} oobe\n".encode())
    assert [e.phase for e in events] == ["oobe"]


def test_invalid_utf8_does_not_break_the_reader() -> None:
    events = list(read_phases([b"\xff\xfe garbage \xc3\n", f"{MARKER} firstlogon\n".encode()]))
    assert [e.phase for e in events] == ["firstlogon"]
