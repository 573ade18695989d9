"""The VMFORGE-PHASE marker grammar: writers and readers agree, everything else is ignored."""

from __future__ import annotations

import pytest

from vmforge.media import phases
from vmforge.media.phases import PhaseMarker, PhaseReader, format_marker, parse_line, parse_stream


def test_round_trip_with_fields() -> None:
    line = format_marker("postinstall-failed", reason="disk full", code="1")
    assert line == 'VMFORGE-PHASE postinstall-failed reason="disk full" code=1'
    assert parse_line(line + "\r\n") == PhaseMarker("postinstall-failed", {"reason": "disk full", "code": "1"})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("VMFORGE-PHASE pe-start", PhaseMarker("pe-start")),
        ("VMFORGE-PHASE pe-start\r\n", PhaseMarker("pe-start")),
        ("\x1b[2JBdsDxe: VMFORGE-PHASE specialize", PhaseMarker("specialize")),
        ("VMFORGE-PHASE firstlogon build=26100 ", PhaseMarker("firstlogon", {"build": "26100"})),
        ("VMFORGE-PHASE future-phase-2 k=v", PhaseMarker("future-phase-2", {"k": "v"})),
        ("VMFORGE-PHASE Pe-Start", None),  # names are lower case
        ("VMFORGE-PHASE", None),
        ("VMFORGE-PHASE pe-start key", None),  # a field needs '='
        ('VMFORGE-PHASE pe-start reason="unterminated', None),
        ("vmforge-phase pe-start", None),
        ("Windows Boot Manager", None),
    ],
)
def test_parse_line(line: str, expected: PhaseMarker | None) -> None:
    assert parse_line(line) == expected


def names(events: list[phases.PhaseEvent]) -> list[str]:
    return [e.phase for e in events]


def test_reader_handles_split_chunks_and_noise() -> None:
    reader = PhaseReader()
    assert reader.feed(b"SeaBIOS\r\nVMFORGE-PHA") == []
    assert names(reader.feed(b"SE pe-start\r\n\xff\xfe garbage\r\nVMFORGE-PHASE spec")) == ["pe-start"]
    assert names(reader.feed(b"ialize\n")) == ["specialize"]
    assert reader.feed(b"x" * (phases.MAX_LINE + 10)) == []  # runaway line: no marker
    assert names(reader.feed(b"\nVMFORGE-PHASE postinstall-done\n")) == ["postinstall-done"]


def test_parse_stream_counts_last_line_without_newline() -> None:
    text = "noise\nVMFORGE-PHASE pe-start\nVMFORGE-PHASE postinstall-done"
    markers = list(parse_stream(text))
    assert names(markers) == ["pe-start", "postinstall-done"]
    assert markers[-1].terminal and not markers[0].terminal
    assert parse_line("VMFORGE-PHASE pe-start").known  # type: ignore[union-attr]


def test_format_rejects_what_readers_could_not_parse() -> None:
    for bad in ("Upper", "with space", "-lead"):
        with pytest.raises(ValueError, match="phase name"):
            format_marker(bad)
    with pytest.raises(ValueError, match="printable ASCII"):
        format_marker("pe-start", reason='say "hi"')
    with pytest.raises(ValueError, match="printable ASCII"):
        format_marker("pe-start", reason="caf\u00e9")


def test_windows_command_writes_marker_to_com1() -> None:
    command = phases.cmd_marker_command(phases.PE_START, step="1")
    # Leading redirection: 'step=1>COM1' would redirect stream 1 instead of writing "1".
    assert command == "cmd.exe /c >COM1 echo VMFORGE-PHASE pe-start step=1"
    assert parse_line(command.split(" echo ", 1)[1]) == PhaseMarker("pe-start", {"step": "1"})
