"""A small TOML writer for vmforge's own data (sections of scalars and lists, arrays of tables)."""

from __future__ import annotations

import json
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def dumps(data: dict[str, Any]) -> str:
    """Top-level scalars, then one [section] per dict, then [[name]] per list of dicts.

    ``None`` values are omitted (TOML has no null).  Nested dicts become [a.b] sections.
    """
    lines: list[str] = []
    _emit(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit(data: dict[str, Any], path: list[str], lines: list[str]) -> None:
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if value is None:
            continue
        is_table_list = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        if isinstance(value, dict) or is_table_list:
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_value(value)}")
    for key, value in tables:
        name = ".".join([*path, key])
        if isinstance(value, dict):
            lines.extend(["", f"[{name}]"])
            _emit(value, [*path, key], lines)
        else:
            for item in value:
                lines.extend(["", f"[[{name}]]"])
                _emit(item, [*path, key], lines)
