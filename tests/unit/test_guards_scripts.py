"""Guard scripts: rendered against golden files, parsed by tree-sitter (PowerShell, and C# for the
display helper), values kept as literals, and the never-persist rule visible in the code."""

from __future__ import annotations

import re

import pytest

from tests.golden import assert_golden
from tests.guards_support import CSHARP, guard_plan, guards_of
from tests.unit.test_os_adapters import PS, errors
from vmforge.guards.scripts import MODES, guard_script, session_script, watchdog_script
from vmforge.guest.os_windows import ps_literal
from vmforge.plan import GuardsPlan
from vmforge.resources import DataFolder, data_dir
from vmforge.spec import GUARD_NAMES

GUARD_DIR = data_dir(DataFolder.TEMPLATES) / "guest" / "windows" / "guards"
HOSTILE = "$(Remove-Item C:\\ -Recurse)'`n\u2019"


def golden_plan() -> GuardsPlan:
    return guards_of(
        guard_plan(
            desktop_users=["alice", "O'Brien"],
            extra_policies=[
                {
                    "scope": "user",
                    "key": "Software\\Policies\\Microsoft\\Windows\\Explorer",
                    "name": "NoNotificationCenter",
                    "value": 1,
                },
                {
                    "scope": "machine",
                    "key": "SOFTWARE\\Policies\\vmforge",
                    "name": "Note",
                    "kind": "string",
                    "value": HOSTILE,
                },
                {"scope": "machine", "key": "SOFTWARE\\Policies\\vmforge", "name": "Big", "value": 4294967295},
            ],
        )
    )


def all_rendered() -> dict[str, str]:
    plan = golden_plan()
    rendered = {f"{guard}-{mode}.ps1": guard_script(guard, plan, mode) for guard in GUARD_NAMES for mode in MODES}
    rendered["watchdog.ps1"] = watchdog_script(plan)
    rendered["display-session.ps1"] = session_script()
    return rendered


@pytest.mark.parametrize("name", sorted(all_rendered()))
def test_rendered_script_matches_golden_and_parses(name: str) -> None:
    text = all_rendered()[name]
    assert_golden(f"guards/{name}", text)
    assert errors(PS.parse(text.encode()).root_node) == [], name
    assert text.startswith("# vmforge:")
    assert "{{" not in text and "{%" not in text


def test_display_helper_is_valid_csharp_and_the_parser_catches_breakage() -> None:
    source = (GUARD_DIR / "Display.cs").read_bytes()
    assert not CSHARP.parse(source).root_node.has_error
    assert CSHARP.parse(
        source.replace(b"public static bool IddAttached(", b"public static bool IddAttached((")
    ).root_node.has_error


def test_the_csharp_inside_the_here_strings_is_the_helper_verbatim() -> None:
    source = (GUARD_DIR / "Display.cs").read_text()
    for text in (session_script(), watchdog_script(golden_plan())):
        inner = re.search(r"-TypeDefinition @'\n(.*?)\n'@", text, re.S)
        assert inner is not None
        assert inner.group(1) == source.rstrip("\n")
        # A line starting with '@ inside would end the here-string early.
        assert not any(line.startswith("'@") for line in source.splitlines())


def test_topology_is_never_saved_to_the_display_database() -> None:
    source = (GUARD_DIR / "Display.cs").read_text()
    assert "0x200" not in source.replace("// SDC_SAVE_TO_DATABASE (0x200)", "")
    calls = re.findall(r"SetDisplayConfig\(([^;]*)\);", source)
    assert calls, "no SetDisplayConfig call found"
    for call in calls:
        if "uint flags" in call:
            continue  # the declaration
        assert "SAVE" not in call and "SDC_APPLY" in call


def test_panel_is_specialized_only_while_the_idd_is_attached() -> None:
    session = session_script()
    assert session.index("ExtendForSession()") < session.index("Specialize($target, $true)")
    assert "if ([VmforgeGuards.Topology]::IddAttached($targets))" in session
    source = (GUARD_DIR / "Display.cs").read_text()
    watchdog_check = source[source.index("void Check(") : source.index("void TripValve(")]
    assert "specializePanel && Topology.IddAttached(now)" in watchdog_check


def test_hostile_values_stay_single_literals() -> None:
    text = guard_script("policies", golden_plan(), "enforce")
    tree = PS.parse(text.encode())
    literals = [n.text.decode() for n in _walk(tree.root_node) if n.type == "string_literal" and n.text]
    assert ps_literal(HOSTILE) in literals
    assert ps_literal("O'Brien") in literals
    assert "Remove-Item" not in text.replace(ps_literal(HOSTILE), "''")


def test_modes_differ_only_in_the_mode_line() -> None:
    plan = golden_plan()
    for guard in GUARD_NAMES:
        check, enforce = (guard_script(guard, plan, mode).splitlines() for mode in MODES)
        diff = [(a, b) for a, b in zip(check, enforce, strict=True) if a != b]
        assert diff == [("$Mode = 'check'", "$Mode = 'enforce'")], guard


def test_watchdog_values_from_the_plan() -> None:
    plan = guards_of(guard_plan(watchdog_debounce_ms=400, watchdog_interval="7s", watchdog_max_failures=9))
    text = watchdog_script(plan)
    assert "$DebounceMs = 400" in text and "$IntervalSeconds = 7" in text and "$MaxFailures = 9" in text
    assert "$SpecializePanel = $true" in text
    desktop = guards_of(guard_plan(profile="desktop", guards=["policies", "topology-watchdog"]))
    assert "$SpecializePanel = $false" in watchdog_script(desktop)


def test_unknown_guard_or_mode_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown guard"):
        guard_script("firewall", golden_plan(), "check")
    with pytest.raises(ValueError, match="mode"):
        guard_script("policies", golden_plan(), "repair")


def _walk(node):  # type: ignore[no-untyped-def]
    yield node
    for child in node.children:
        yield from _walk(child)
