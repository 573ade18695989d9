"""Write docs/spec-reference.md from the spec models (``make docs``); a test keeps it current."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from vmforge.spec import Spec, iter_fields


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "(required)"
    if field.default_factory is not None:
        return "—"
    value = field.default
    if value is None:
        return "unset"
    if hasattr(value, "get_secret_value"):
        return f"`{value.get_secret_value()}`"
    adapter_value: Any = value
    if isinstance(value, BaseModel):
        return "—"
    if hasattr(value, "value"):
        adapter_value = value.value
    if isinstance(value, tuple):
        adapter_value = [getattr(v, "value", v) for v in value]
    return f"`{json.dumps(adapter_value)}`"


def spec_reference() -> str:
    lines = [
        "# vmforge spec reference",
        "",
        "Generated from `vmforge/spec.py` by `make docs`; a test fails when it is out of date.",
        "A spec is a TOML file (`vmforge.toml` by default, `--spec FILE`). Sizes are written",
        "`8GiB`/`512MiB`, durations `90s`/`20m`/`2h`. Relative paths are relative to the spec file.",
        "Unknown keys are errors. `--set section.key=value` overrides one field.",
        "",
        "| key | default | meaning |",
        "| --- | --- | --- |",
    ]
    sizes = {"memory", "size"}
    for dotted, field in iter_fields(Spec):
        default = _default(field)
        leaf = dotted.rsplit(".", 1)[-1]
        if leaf in sizes and isinstance(field.default, int) and not isinstance(field.default, bool):
            from vmforge.units import format_size

            default = f'`"{format_size(field.default)}"`'
        if isinstance(field.default, float) and dotted.startswith("timeouts."):
            from vmforge.units import format_duration

            default = f'`"{format_duration(field.default)}"`'
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{dotted}` | {default} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(spec_reference())
