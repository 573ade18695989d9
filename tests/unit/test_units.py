import pytest

from vmforge.units import format_duration, format_size, next_pow2, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("64GB", 64 * 1000**3),
        ("1.5GiB", 1536 * 1024**2),
        (4096, 4096),
        ("2 TiB", 2 * 1024**4),
        ("16m", 16 * 1024**2),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["-4GiB", "0", "8 parsecs", "", "GiB", True, 1.5, None, -1])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_format_size_is_shortest_exact() -> None:
    assert format_size(8 * 1024**3) == "8GiB"
    assert format_size(1536 * 1024**2) == "1536MiB"
    assert format_size(1000) == "1000B"
    assert parse_size(format_size(123 * 1024**2)) == 123 * 1024**2


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("20m", 1200), ("2h", 7200), ("1h30m", 5400), (45, 45)])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-5m", "soon", "5 fortnights", "", "0s", False])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(7200) == "2h"
    assert format_duration(600) == "10m"
    assert format_duration(95) == "95s"


def test_next_pow2() -> None:
    assert [next_pow2(v) for v in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 128]
