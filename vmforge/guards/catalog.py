"""What each guard expects, and how its answer becomes a verdict with a precise summary."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from vmforge.guards.model import (
    Expected,
    GuardResult,
    GuestAnswer,
    ItemResult,
    ItemState,
    Status,
    compare,
    verdict,
)
from vmforge.guards.scripts import GuestLayout, policy_item, watchdog_arguments, watchdog_script
from vmforge.plan import SPECIALIZED_EDITION_IDS, SPECIALIZED_MIN_BUILD, GuardsPlan

DEFAULT_PROFILE = ".default"
UTF8_BOM = b"\xef\xbb\xbf"

# Win32 error codes DisplayConfigSetDeviceInfo is known to return.
WIN32_ERRORS = {
    5: "ERROR_ACCESS_DENIED",
    31: "ERROR_GEN_FAILURE",
    50: "ERROR_NOT_SUPPORTED",
    87: "ERROR_INVALID_PARAMETER",
    122: "ERROR_INSUFFICIENT_BUFFER",
    1610: "ERROR_BAD_CONFIGURATION",
}
SETTINGS_FALLBACK = (
    "fallback: in the desktop user's session, Settings > System > Display > Advanced display > "
    "'Remove display from desktop' for the panel (needs elevation; the IDD must stay attached)"
)


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {"one_of": list(self.values)}


@dataclass(frozen=True)
class AtLeast:
    value: int

    def to_data(self) -> dict[str, Any]:
        return {"at_least": self.value}


@dataclass(frozen=True)
class SameNames:
    """A comma-separated list of account names, in any order and case (Windows compares them so)."""

    values: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {"same_names": list(self.values)}


def guest_file_bytes(text: str) -> bytes:
    """Scripts go to the guest as UTF-8 with a BOM (Windows PowerShell 5.1 reads BOM-less files as ANSI)."""
    return UTF8_BOM + text.encode("utf-8")


def watchdog_digest(plan: GuardsPlan, layout: GuestLayout) -> str:
    return hashlib.sha256(guest_file_bytes(watchdog_script(plan, layout))).hexdigest()


def expected_items(guard: str, plan: GuardsPlan, layout: GuestLayout) -> list[Expected]:
    if guard == "policies":
        items = []
        targets = [*plan.desktop_users, *([DEFAULT_PROFILE] if plan.default_profile else [])]
        for policy in plan.policies:
            if policy.scope == "user":
                items += [Expected(policy_item(policy, target), policy.value) for target in targets]
            else:
                items.append(Expected(policy_item(policy, None), policy.value))
        return items
    if guard == "idd-desktop":
        return [
            Expected("device.present", True),
            Expected("device.status", "OK"),
            Expected("desktop.attached", True),
        ]
    if guard == "specialized-panel":
        return [
            Expected("edition", OneOf(SPECIALIZED_EDITION_IDS)),
            Expected("build", AtLeast(SPECIALIZED_MIN_BUILD)),
            Expected("idd.attached", True),
            Expected("panel.present", True),
            Expected("panel.specialized", True),
        ]
    if guard == "topology-watchdog":
        return [
            Expected("task.registered", True),
            Expected("task.enabled", True),
            Expected("task.arguments", watchdog_arguments(layout)),
            Expected("task.users", SameNames(plan.desktop_users)),
            Expected("script.sha256", watchdog_digest(plan, layout)),
            Expected("watchdog.alive", True),
            Expected("valve.tripped", False),
        ]
    raise ValueError(f"unknown guard {guard!r}")


def _matches(expected: Any, found: Any) -> bool | None:
    """Special comparisons; None: use the ordinary one."""
    if isinstance(expected, OneOf):
        return isinstance(found, str) and found in expected.values
    if isinstance(expected, SameNames):
        return isinstance(found, str) and {n.casefold() for n in found.split(",") if n} == {
            n.casefold() for n in expected.values
        }
    if isinstance(expected, AtLeast):
        return isinstance(found, int | float) and not isinstance(found, bool) and found >= expected.value
    return None


def evaluate(guard: str, plan: GuardsPlan, layout: GuestLayout, answer: GuestAnswer) -> GuardResult:
    expected = expected_items(guard, plan, layout)
    items = []
    for compared in compare(expected, answer):
        known = compared.state in (ItemState.OK, ItemState.DIFFERS)
        special = _matches(compared.expected, compared.found) if known else None
        if special is not None:
            compared = replace(compared, state=ItemState.OK if special else ItemState.DIFFERS)  # noqa: PLW2901
        items.append(compared)
    if guard == "policies":
        items = _inherit_default_profile(items, answer)
    status = verdict(items)
    if answer.errors and status is Status.OK:
        status = Status.UNVERIFIED  # the script said something went wrong: do not vouch for it
    return GuardResult(
        guard=guard,
        status=status,
        summary=_summary(guard, status, items, answer),
        items=tuple(_jsonable(i) for i in items),
        changed=answer.changed,
        facts=answer.facts,
        errors=answer.errors,
    )


def _jsonable(item: ItemResult) -> ItemResult:
    expected = item.expected
    if isinstance(expected, OneOf | AtLeast | SameNames):
        expected = expected.to_data()
    return replace(item, expected=expected)


def _inherit_default_profile(items: list[ItemResult], answer: GuestAnswer) -> list[ItemResult]:
    """An account that never logged on gets the default profile's values at first logon."""
    no_profile = answer.facts.get("no_profile") or []
    if isinstance(no_profile, str):
        no_profile = [no_profile]
    by_id = {item.id: item for item in items}
    out = []
    for item in items:
        user = _user_of(item.id)
        if user not in no_profile or item.state is not ItemState.ABSENT:
            out.append(item)
            continue
        default = by_id.get(item.id.replace(f"user[{user}]:", f"user[{DEFAULT_PROFILE}]:", 1))
        if default is not None and default.state is ItemState.OK:
            out.append(replace(item, state=ItemState.OK, note="no profile yet: inherits the default profile's value"))
        else:
            out.append(replace(item, note="no profile yet, and the default profile lacks the value"))
    return out


def _user_of(item_id: str) -> str | None:
    if not item_id.startswith("user["):
        return None
    return item_id[5 : item_id.index("]:")] if "]:" in item_id else None


def _summary(guard: str, status: Status, items: Sequence[ItemResult], answer: GuestAnswer) -> str:
    bad = [i for i in items if i.state is not ItemState.OK]
    if guard == "specialized-panel":
        rejected = _rejected_calls(answer)
        if rejected:
            return rejected
        edition = next((i for i in items if i.id == "edition"), None)
        if edition is not None and edition.state is ItemState.DIFFERS:
            return (
                f"edition {edition.found} has no specialized displays "
                "(Enterprise, Pro for Workstations or IoT Enterprise needed)"
            )
    if guard == "idd-desktop" and status is Status.MISSING:
        return "no IDD device with the configured hardware id; install the IDD package"
    if status is Status.OK:
        return f"{len(items)} item{'s' if len(items) != 1 else ''} read back as expected"
    if status is Status.MISSING:
        return "nothing of it is in the guest"
    if status is Status.UNVERIFIED:
        unknown = [i for i in bad if i.state is ItemState.UNKNOWN]
        if unknown:
            return f"could not read {unknown[0].id}: {unknown[0].note}" + (
                f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else ""
            )
        return "the guest reported errors: " + "; ".join(answer.errors)[:300]
    first = bad[0]
    found = "absent" if first.state is ItemState.ABSENT else repr(first.found)
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{first.id}: expected {first.expected!r}, found {found}{more}"


def _rejected_calls(answer: GuestAnswer) -> str | None:
    calls = answer.facts.get("specialize_calls") or []
    if isinstance(calls, dict):
        calls = [calls]
    for call in calls:
        if not isinstance(call, dict):
            continue
        rc = call.get("rc")
        if isinstance(rc, int) and rc != 0:
            name = WIN32_ERRORS.get(rc, "Win32 error")
            return (
                "Windows rejected DisplayConfigSetDeviceInfo(SET_MONITOR_SPECIALIZATION) for "
                f"{call.get('name') or 'the panel'} (target {call.get('target_id')}): {name} ({rc}); "
                f"{SETTINGS_FALLBACK}"
            )
    return None
