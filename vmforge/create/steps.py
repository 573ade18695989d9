"""The named steps of ``vmforge create``, in order, and which plan changes invalidate which.

Every step ends as ``done`` (its detail recorded) or ``skipped`` (with the reason recorded):
both are written to the VM's state.json at once, so a re-run continues after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREFLIGHT = "preflight"
ANSWER_MEDIA = "answer-media"
STORAGE = "storage"
DEFINE_INSTALL = "define-install"
START_INSTALL = "start-install"
SETUP_PHASES = "setup-phases"
DEFINE_POST_INSTALL = "define-post-install"
START_POST_INSTALL = "start-post-install"
POSTINSTALL = "postinstall"
GUEST_CHANNEL = "guest-channel"
PACKAGES = "packages"
GUARDS = "guards"
VERIFY = "verify"
DETACH_MEDIA = "detach-media"
ROTATE_PASSWORD = "rotate-password"  # noqa: S105 - a step name
FINAL_SHAPE = "final-shape"
SNAPSHOT = "snapshot"

STEPS = (
    PREFLIGHT,
    ANSWER_MEDIA,
    STORAGE,
    DEFINE_INSTALL,
    START_INSTALL,
    SETUP_PHASES,
    DEFINE_POST_INSTALL,
    START_POST_INSTALL,
    POSTINSTALL,
    GUEST_CHANNEL,
    PACKAGES,
    GUARDS,
    VERIFY,
    DETACH_MEDIA,
    ROTATE_PASSWORD,
    FINAL_SHAPE,
    SNAPSHOT,
)

# The first step a change of this plan field invalidates (everything after it is affected too).
_FIRST_AFFECTED = {
    "family": ANSWER_MEDIA,
    "computer_name": ANSWER_MEDIA,
    "media": ANSWER_MEDIA,
    "disk": STORAGE,
}


@dataclass(frozen=True)
class Skipped:
    """A step that does not apply (or cannot run yet), with the honest reason."""

    reason: str


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def affected_steps(fields: list[str], completed: list[str]) -> list[str]:
    """The completed steps a change of ``fields`` makes stale, in pipeline order."""
    if not fields:
        return []
    first = min(STEPS.index(_FIRST_AFFECTED.get(f, DEFINE_INSTALL)) for f in fields)
    return [step for step in STEPS[first:] if step in completed]
