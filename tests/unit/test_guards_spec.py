"""The [guards] section and its plan: profiles, guard names, users, policies, edition refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.guards_support import guard_plan, guard_spec_data, guards_of
from vmforge.errors import SpecError
from vmforge.plan import resolve_plan
from vmforge.spec import parse_spec


def _spec(data: dict[str, Any]) -> Any:
    return parse_spec(data, label="test")


def test_no_profile_means_no_guards() -> None:
    plan = resolve_plan(_spec({"windows": {"family": "11"}}))
    assert plan.guards is None


def test_desktop_profile_policies_for_the_admin_user_and_default_profile() -> None:
    plan = guards_of(guard_plan(profile="desktop"))
    assert plan.guards == ("policies", "idd-desktop")
    assert plan.desktop_users == ("vmforge",)
    assert plan.default_profile is True
    assert [(p.scope, p.name, p.value) for p in plan.policies] == [
        ("user", "NoDispCPL", 1),
        ("user", "NoDispSettingsPage", 1),
        ("machine", "SettingsPageVisibility", "hide:display"),
    ]
    assert plan.policies[2].key == "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer"
    assert plan.policies[0].key == "Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System"


def test_compositor_profile_runs_all_four_in_enforcement_order() -> None:
    plan = guards_of(guard_plan(guards=["topology-watchdog", "policies", "specialized-panel"]))
    assert plan.guards == ("policies", "specialized-panel", "topology-watchdog")
    full = guards_of(guard_plan())
    assert full.guards == ("policies", "idd-desktop", "specialized-panel", "topology-watchdog")
    assert (full.watchdog.debounce_ms, full.watchdog.interval_s, full.watchdog.max_failures) == (250, 5, 5)


def test_extra_policies_and_hidden_pages_and_users() -> None:
    plan = guards_of(
        guard_plan(
            desktop_users=["alice", "bob"],
            default_profile=False,
            hidden_settings_pages=["display", "windowsupdate"],
            extra_policies=[
                {
                    "scope": "user",
                    "key": "Software\\Policies\\Microsoft\\Windows\\Explorer",
                    "name": "NoNotificationCenter",
                    "value": 1,
                },
                {
                    "scope": "machine",
                    "key": "SOFTWARE\\Policies\\X",
                    "name": "Mode",
                    "kind": "string",
                    "value": "locked",
                },
            ],
        )
    )
    assert plan.desktop_users == ("alice", "bob")
    assert plan.default_profile is False
    assert plan.policies[2].value == "hide:display;windowsupdate"
    assert [p.name for p in plan.policies[3:]] == ["NoNotificationCenter", "Mode"]


@pytest.mark.parametrize(
    ("guards", "message"),
    [
        ({"guards": ["polices"]}, "unknown guard 'polices'; did you mean 'policies'?"),
        ({"guards": ["firewall"]}, "unknown guard 'firewall' (known: policies, idd-desktop"),
        ({"guards": ["policies", "policies"]}, "listed twice"),
        ({"profile": "desktop", "guards": ["specialized-panel"]}, "needs guards.profile = 'compositor'"),
        ({"profile": "none", "guards": ["policies"]}, "guards.profile = 'none'"),
        ({"desktop_users": ["a/b"]}, "not a local Windows account name"),
        ({"hidden_settings_pages": ["Display Page"]}, "not a Settings page name"),
        ({"idd_hardware_id": "Root\\Mtt VDD"}, "hardware id"),
        (
            {"extra_policies": [{"scope": "user", "key": "HKCU\\Software\\X", "name": "A", "value": 1}]},
            "leave the hive out",
        ),
        (
            {"extra_policies": [{"scope": "user", "key": "Software\\X", "name": "A", "value": "1"}]},
            "dword policy value",
        ),
        (
            {"extra_policies": [{"scope": "user", "key": "Software\\X", "name": "A", "kind": "string", "value": 1}]},
            "string policy value",
        ),
        ({"extra_policies": [{"scope": "machine", "key": "Software\\X", "name": "A", "value": -1}]}, "0 to 4294967295"),
        (
            {"extra_policies": [{"scope": "site", "key": "Software\\X", "name": "A", "value": 1}]},
            "extra_policies.0.scope",
        ),
    ],
)
def test_bad_guard_settings_name_the_field(guards: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        guard_plan(**guards)
    assert message in str(caught.value)
    assert "guards." in str(caught.value)


def test_an_extra_policy_cannot_fight_a_built_in_one() -> None:
    with pytest.raises(SpecError, match="NoDispCPL which another policy already sets"):
        guard_plan(
            extra_policies=[
                {
                    "scope": "user",
                    "key": "Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System",
                    "name": "NoDispCPL",
                    "value": 0,
                }
            ]
        )


@pytest.mark.parametrize("edition", ["Windows 11 Pro", "Windows 11 Home", "Windows 11 Education", "Windows 10 Pro N"])
def test_compositor_profile_refuses_editions_without_specialized_displays(edition: str) -> None:
    data = guard_spec_data()
    data["windows"]["edition"] = edition
    with pytest.raises(SpecError, match="has no specialized displays") as caught:
        resolve_plan(_spec(data))
    assert caught.value.hint is not None and "Pro for Workstations" in caught.value.hint


@pytest.mark.parametrize(
    "edition", ["Windows 11 Enterprise", "Windows 11 Pro for Workstations", "Windows 10 IoT Enterprise LTSC", 3]
)
def test_compositor_profile_accepts_capable_editions_and_image_indexes(edition: str | int) -> None:
    data = guard_spec_data()
    data["windows"]["edition"] = edition
    assert resolve_plan(_spec(data)).guards is not None


@pytest.mark.parametrize("family", ["7", "8.1", "2022"])
def test_compositor_profile_refuses_families_without_specialized_displays(family: str) -> None:
    data = guard_spec_data()
    data["windows"]["family"] = family
    with pytest.raises(SpecError, match=f"Windows {family} has no specialized displays"):
        resolve_plan(_spec(data))


def test_desktop_profile_does_not_care_about_the_edition() -> None:
    data = guard_spec_data(profile="desktop")
    data["windows"]["edition"] = "Windows 11 Home"
    assert resolve_plan(_spec(data)).guards is not None


def test_probe_guest_has_no_guards() -> None:
    with pytest.raises(SpecError, match="os = 'probe'"):
        resolve_plan(_spec({"os": "probe", "guards": {"profile": "desktop"}}))


def test_guard_profile_changes_the_plan_digest() -> None:
    assert guard_plan().digest() != guard_plan(desktop_users=["alice"]).digest()
