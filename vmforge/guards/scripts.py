"""Render the guard scripts (templates/guest/windows/guards/*.ps1) for a guard profile.

Values enter the scripts only as PowerShell literals: strings through
:func:`vmforge.guest.os_windows.ps_literal`, numbers as digits, booleans as ``$true``/``$false``.
The user-session half (``display-session.ps1``, with the C# display helper) is copied into the
guest once and started by the session-0 scripts through a scheduled task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmforge.guest.os_windows import ps_literal
from vmforge.plan import SPECIALIZED_EDITION_IDS, SPECIALIZED_MIN_BUILD, GuardsPlan, PolicyPlan
from vmforge.templating import render_template

FOLDER = "guest/windows/guards"
MODES = ("check", "enforce")
SESSION_GUARDS = ("idd-desktop", "specialized-panel")  # need display-session.ps1 in the guest


@dataclass(frozen=True)
class GuestLayout:
    """Where the guards keep files in the guest (injectable so tests can point elsewhere)."""

    root: str = "C:\\ProgramData\\vmforge\\guards"
    sep: str = "\\"

    @property
    def watchdog_script(self) -> str:
        return f"{self.root}{self.sep}watchdog.ps1"

    @property
    def session_script(self) -> str:
        return f"{self.root}{self.sep}display-session.ps1"

    @property
    def state_dir(self) -> str:
        return f"{self.root}{self.sep}state"


WINDOWS_LAYOUT = GuestLayout()


def ps_value(value: object) -> str:
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    return ps_literal(str(value))


def ps_list(values: Iterable[object]) -> str:
    return ", ".join(ps_value(v) for v in values)


def policy_item(policy: PolicyPlan, target: str | None) -> str:
    """The item id a policy is reported under: ``user[<account>]:<key>\\<name>`` or ``machine:…``."""
    path = f"{policy.key}\\{policy.name}"
    return f"user[{target}]:{path}" if policy.scope == "user" else f"machine:{path}"


def render(name: str, **context: object) -> str:
    return render_template(f"{FOLDER}/{name}.ps1", **context)


def session_script() -> str:
    """The user-session half of idd-desktop and specialized-panel (no values rendered in)."""
    return render("display-session")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}")


def policies_script(plan: GuardsPlan, mode: str) -> str:
    _check_mode(mode)
    policies = [
        {
            "scope": ps_value(p.scope),
            "key": ps_value(p.key),
            "name": ps_value(p.name),
            "kind": ps_value(p.kind),
            "value": ps_value(p.value),
            "id": ps_value(f"{p.key}\\{p.name}"),
        }
        for p in plan.policies
    ]
    return render(
        "policies",
        mode=ps_literal(mode),
        users=ps_list(plan.desktop_users),
        default_profile=ps_value(plan.default_profile),
        policies=policies,
    )


def idd_desktop_script(plan: GuardsPlan, mode: str, layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    _check_mode(mode)
    return render(
        "idd-desktop",
        mode=ps_literal(mode),
        hardware_id=ps_literal(plan.idd_hardware_id),
        users=ps_list(plan.desktop_users),
        session_timeout=plan.user_session_timeout_s,
        session_script=ps_literal(layout.session_script),
    )


def specialized_panel_script(plan: GuardsPlan, mode: str, layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    _check_mode(mode)
    return render(
        "specialized-panel",
        mode=ps_literal(mode),
        hardware_id=ps_literal(plan.idd_hardware_id),
        users=ps_list(plan.desktop_users),
        session_timeout=plan.user_session_timeout_s,
        editions=ps_list(SPECIALIZED_EDITION_IDS),
        minimum_build=SPECIALIZED_MIN_BUILD,
        session_script=ps_literal(layout.session_script),
    )


def watchdog_arguments(layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    return f'-NoProfile -NonInteractive -ExecutionPolicy Bypass -WindowStyle Hidden -File "{layout.watchdog_script}"'


def heartbeat_seconds(plan: GuardsPlan) -> int:
    """A heartbeat older than this means the watchdog is not running now."""
    return max(30, 3 * plan.watchdog.interval_s)


def watchdog_task_script(plan: GuardsPlan, mode: str, layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    _check_mode(mode)
    return render(
        "topology-watchdog",
        mode=ps_literal(mode),
        users=ps_list(plan.desktop_users),
        script_path=ps_literal(layout.watchdog_script),
        state_dir=ps_literal(layout.state_dir),
        arguments=ps_literal(watchdog_arguments(layout)),
        heartbeat_seconds=heartbeat_seconds(plan),
    )


def watchdog_script(plan: GuardsPlan, layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    """The script the scheduled task runs in the user's session (copied into the guest)."""
    return render(
        "watchdog",
        hardware_id=ps_literal(plan.idd_hardware_id),
        specialize_panel=ps_value("specialized-panel" in plan.guards),
        debounce_ms=plan.watchdog.debounce_ms,
        interval_seconds=plan.watchdog.interval_s,
        max_failures=plan.watchdog.max_failures,
        state_dir=ps_literal(layout.state_dir),
    )


def guard_script(guard: str, plan: GuardsPlan, mode: str, layout: GuestLayout = WINDOWS_LAYOUT) -> str:
    if guard == "policies":
        return policies_script(plan, mode)
    if guard == "idd-desktop":
        return idd_desktop_script(plan, mode, layout)
    if guard == "specialized-panel":
        return specialized_panel_script(plan, mode, layout)
    if guard == "topology-watchdog":
        return watchdog_task_script(plan, mode, layout)
    raise ValueError(f"unknown guard {guard!r}")
