"""Guard results: what the guest said, what vmforge expected, and the verdict.

The guest never decides whether a guard is fine.  Each guard script prints one JSON document
(schema below) with the values it *read back*; the host compares them with the values the plan
expects.  A value the guest could not read is ``unknown``, and a guard with an unknown item is
``unverified`` - never ``ok``.

Guest output, schema 1 (one line of JSON on stdout)::

    {"vmforge_guard": 1, "guard": "policies", "mode": "check" | "enforce",
     "found":   {"<item id>": <value or null>},     # null: the value does not exist
     "unknown": {"<item id>": "why it could not be read"},
     "changed": ["<item id>", ...],                 # enforce: what the script wrote
     "facts":   {"<name>": <value>},                # context (edition, build, error codes)
     "errors":  ["<message>", ...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA = 1
MAX_RAW_TEXT = 64 * 1024


class Status(StrEnum):
    OK = "ok"
    DRIFTED = "drifted"
    MISSING = "missing"
    UNVERIFIED = "unverified"


class ItemState(StrEnum):
    OK = "ok"
    DIFFERS = "differs"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Expected:
    """One value a guard wants: ``id`` as the guest script names it, and the wanted value."""

    id: str
    value: Any
    label: str = ""  # human name; the id when empty


@dataclass(frozen=True)
class ItemResult:
    id: str
    state: ItemState
    expected: Any
    found: Any = None
    note: str = ""

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"item": self.id, "state": self.state.value, "expected": self.expected}
        data["found"] = self.found
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class GuestAnswer:
    """A guard script's parsed output."""

    guard: str
    mode: str
    found: Mapping[str, Any]
    unknown: Mapping[str, str]
    changed: tuple[str, ...]
    facts: Mapping[str, Any]
    errors: tuple[str, ...]


class MalformedAnswer(ValueError):
    """The guard script's output is not the schema-1 JSON document."""


def parse_answer(stdout: bytes, guard: str) -> GuestAnswer:
    """The one JSON document a guard script prints, checked against the schema.

    PowerShell may print progress or warnings before it; the answer is the *last* line that
    parses as a JSON object.
    """
    text = stdout.decode("utf-8-sig", "replace")
    document: Any = None
    for raw_line in reversed(text.splitlines()):
        line = raw_line.strip()
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except ValueError:
                continue
            break
    if not isinstance(document, dict):
        raise MalformedAnswer("no JSON object in the output" if text.strip() else "empty output")
    if document.get("vmforge_guard") != SCHEMA:
        raise MalformedAnswer(f"vmforge_guard is {document.get('vmforge_guard')!r}, expected {SCHEMA}")
    if document.get("guard") != guard:
        raise MalformedAnswer(f"the answer is for guard {document.get('guard')!r}, not {guard!r}")
    found = _mapping(document, "found")
    unknown = _mapping(document, "unknown")
    facts = _mapping(document, "facts")
    changed = _strings(document, "changed")
    errors = _strings(document, "errors")
    mode = document.get("mode")
    if mode not in ("check", "enforce"):
        raise MalformedAnswer(f"mode is {mode!r}, expected 'check' or 'enforce'")
    return GuestAnswer(
        guard=guard,
        mode=mode,
        found=found,
        unknown={str(k): str(v) for k, v in unknown.items()},
        changed=changed,
        facts=facts,
        errors=errors,
    )


def _mapping(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key, {})
    # ConvertTo-Json writes an empty hashtable as {} but an empty ordered one may come out as [].
    if value == []:
        return {}
    if not isinstance(value, dict):
        raise MalformedAnswer(f"'{key}' is {type(value).__name__}, expected an object")
    return value


def _strings(document: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = document.get(key, [])
    if value is None:
        return ()
    if isinstance(value, str):  # ConvertTo-Json unrolls a one-element array into its element
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedAnswer(f"'{key}' is not a list of strings")
    return tuple(value)


def same_value(expected: Any, found: Any) -> bool:
    """Registry and CIM values come back as numbers or strings; compare like for like."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return expected is found
    if isinstance(expected, int) and isinstance(found, int | float):
        return found == expected
    if isinstance(expected, str) and isinstance(found, str):
        return found == expected
    return bool(expected == found)


def compare(expected: Sequence[Expected], answer: GuestAnswer) -> list[ItemResult]:
    """Each expected item against what the guest read back."""
    results = []
    for item in expected:
        if item.id in answer.unknown:
            results.append(ItemResult(item.id, ItemState.UNKNOWN, item.value, None, answer.unknown[item.id]))
        elif item.id not in answer.found:
            results.append(ItemResult(item.id, ItemState.UNKNOWN, item.value, None, "the guest did not report it"))
        elif answer.found[item.id] is None:
            results.append(ItemResult(item.id, ItemState.ABSENT, item.value, None))
        elif same_value(item.value, answer.found[item.id]):
            results.append(ItemResult(item.id, ItemState.OK, item.value, answer.found[item.id]))
        else:
            results.append(ItemResult(item.id, ItemState.DIFFERS, item.value, answer.found[item.id]))
    return results


def verdict(items: Sequence[ItemResult]) -> Status:
    """ok only when every item was read back and matches; missing when nothing of it was found;
    drifted when something known differs; unverified when nothing is known to be wrong but not
    everything could be read."""
    if not items:
        return Status.UNVERIFIED
    states = {item.state for item in items}
    if states == {ItemState.OK}:
        return Status.OK
    if not states & {ItemState.DIFFERS, ItemState.ABSENT}:
        return Status.UNVERIFIED
    if not states & {ItemState.OK, ItemState.DIFFERS}:
        return Status.MISSING  # nothing of it was found (some parts may not be readable at all)
    return Status.DRIFTED


@dataclass(frozen=True)
class GuardResult:
    guard: str
    status: Status
    summary: str
    items: tuple[ItemResult, ...] = ()
    changed: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    raw_output: str | None = None  # where the unparseable output was saved

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def drift(self) -> list[ItemResult]:
        return [item for item in self.items if item.state is not ItemState.OK]

    def to_data(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "status": self.status.value,
            "summary": self.summary,
            "drift": [item.to_data() for item in self.drift()],
            "items": [item.to_data() for item in self.items],
            "changed": list(self.changed),
            "facts": dict(self.facts),
            "errors": list(self.errors),
            "raw_output": self.raw_output,
        }


@dataclass(frozen=True)
class GuardReport:
    vm: str
    operation: str  # "check" or "enforce"
    profile: str
    results: tuple[GuardResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def not_ok(self) -> list[GuardResult]:
        return [result for result in self.results if not result.ok]

    def counts(self) -> dict[str, int]:
        return {status.value: sum(r.status is status for r in self.results) for status in Status}

    def to_data(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "vm": self.vm,
            "operation": self.operation,
            "profile": self.profile,
            "ok": self.ok,
            "counts": self.counts(),
            "guards": [result.to_data() for result in self.results],
        }


def raw_excerpt(stdout: bytes, stderr: bytes) -> str:
    """What a malformed answer looked like, bounded, for the saved raw file."""
    out = stdout[:MAX_RAW_TEXT].decode("utf-8", "replace")
    err = stderr[:MAX_RAW_TEXT].decode("utf-8", "replace")
    return f"--- stdout ---\n{out}\n--- stderr ---\n{err}\n"
