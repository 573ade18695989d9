"""Sizes and durations as people write them: ``8GiB``, ``512MiB``, ``90s``, ``2h``."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

_DURATION_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_size(value: object) -> int:
    """Parse a byte count: an int, or a string like ``8GiB`` (binary) or ``8GB`` (decimal)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 8GiB, got {value!r}")
    if isinstance(value, int):
        number: float = value
        unit = ""
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a size; write it like 8GiB or 512MiB")
        number = float(match.group(1))
        unit = match.group(2).lower()
        if unit not in _SIZE_UNITS:
            raise ValueError(f"unknown size unit {match.group(2)!r} in {value!r}; use KiB, MiB, GiB or TiB")
    else:
        raise ValueError(f"expected a size like 8GiB, got {value!r}")
    size = int(number * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


def format_size(size: int) -> str:
    """The shortest exact binary form: 8589934592 -> '8GiB'."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_duration(value: object) -> float:
    """Parse seconds: a number, or a string like ``90s``, ``20m``, ``2h``, ``1h30m``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 20m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION_RE.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration; write it like 90s, 20m or 2h")
        seconds = 0.0
        for number, unit in parts:
            if unit not in _DURATION_UNITS:
                raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use s, m, h or d")
            seconds += float(number) * _DURATION_UNITS[unit]
    else:
        raise ValueError(f"expected a duration like 20m, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def next_pow2(value: int) -> int:
    if value <= 1:
        return 1
    return 1 << (value - 1).bit_length()
