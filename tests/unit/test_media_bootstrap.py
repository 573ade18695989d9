"""The guest bootstrap script: real PowerShell syntax (tree-sitter-powershell), markers, ASCII/CRLF."""

from __future__ import annotations

import re

import pytest
import tree_sitter
import tree_sitter_powershell

from tests.unit.test_media_answer import inspection, spec_for
from vmforge.media import phases
from vmforge.media.bootstrap import render_bootstrap
from vmforge.media.editions import GENERIC_KEYS, KEY_RE, generic_key, key_owner, normalise_edition
from vmforge.plan import resolve_plan
from vmforge.spec import WindowsFamily

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _errors(node: tree_sitter.Node) -> list[str]:
    found = []
    if node.type == "ERROR" or node.is_missing:
        found.append(f"line {node.start_point[0] + 1}: {node.text!r}"[:200])
    for child in node.children:
        found.extend(_errors(child))
    return found


def _script(kind: str = "win11-24h2", arch: str = "amd64") -> str:
    iso = inspection(kind)
    plan = resolve_plan(spec_for(), media=iso.media_facts())
    return render_bootstrap(plan, arch)


@pytest.mark.parametrize(("kind", "arch"), [("win11-24h2", "amd64"), ("win7", "x86"), ("server2025", "amd64")])
def test_bootstrap_is_valid_powershell(kind: str, arch: str) -> None:
    text = _script(kind, arch)
    tree = PARSER.parse(text.encode("ascii"))
    assert not tree.root_node.has_error, _errors(tree.root_node)
    assert text.isascii() and "\r\n" in text and "\n" not in text.replace("\r\n", "")


def test_syntax_check_catches_broken_powershell() -> None:
    """The check can fail: a script with an unclosed block is reported."""
    broken = _script().replace("function Disable-AutoLogon {", "function Disable-AutoLogon {{", 1)
    broken = broken.replace("try {\r\n    Send-Phase", "try (\r\n    Send-Phase", 1)
    assert PARSER.parse(broken.encode()).root_node.has_error


def test_bootstrap_reports_phases_in_the_shared_grammar() -> None:
    text = _script()
    names = re.findall(r"Send-Phase '([a-z-]+)'", text)
    assert names == [phases.POSTINSTALL_START, phases.POSTINSTALL_DONE, phases.POSTINSTALL_FAILED]
    assert f"'{phases.MARKER} '" in text and f"'{phases.SERIAL_PORT}'" in text
    assert r"guest-agent\qemu-ga-x86_64.msi" in text
    assert r"guest-agent\qemu-ga-i386.msi" in _script("win7", "x86")
    assert r"C:\Windows\Panther\unattend.xml" in text and "AutoAdminLogon" in text


def test_generic_key_table() -> None:
    for table in GENERIC_KEYS.values():
        assert all(KEY_RE.match(k) for k in table.values())
    assert generic_key(WindowsFamily.W11, "Professional") == "VK7JG-NPHTM-C97JM-9MPGT-3V66T"
    assert generic_key(WindowsFamily.S2022, "ServerDatacenterCor") == "WX4NM-KYWYW-QJJR4-XV3QB-6VM33"
    assert generic_key(WindowsFamily.S2022, "ServerStandardEval") is None  # evaluation media need no key
    assert normalise_edition("ServerCore") == "ServerCore"
    assert {e for _f, e in key_owner("vk7jg-nphtm-c97jm-9mpgt-3v66t")} == {"Professional"}
    assert key_owner("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE") == []
