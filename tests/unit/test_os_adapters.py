"""OS adapters: argv shapes, quoting, and the Windows .ps1 files parsed by tree-sitter's PowerShell grammar."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.os_windows import WindowsAdapter, encode_command, ps_literal, render_script
from vmforge.guest.session import adapter_for
from vmforge.guest.transport import GuestError, OsInfo
from vmforge.resources import DataFolder, data_dir

PS = Parser(Language(tree_sitter_powershell.language()))
SCRIPTS = sorted((data_dir(DataFolder.TEMPLATES) / "guest" / "windows").glob("*.ps1"))
NASTY_PATHS = [
    "C:\\Windows\\Temp\\vmforge\\file.bin",
    "C:\\Users\\O'Brien\\$env:TEMP\\`n\\x.bin",
    "C:\\odd\u2019quote\\[brackets]\\*.txt",
    "C:\\semi;colon\\$(Remove-Item C:\\ -Recurse)",
]


def errors(node: Node) -> list[str]:
    found: list[str] = []
    if node.type == "ERROR" or node.is_missing:
        found.append(f"{node.type} at {node.start_point}: {node.text!r}")
    for child in node.children:
        found.extend(errors(child))
    return found


def decode(argv: list[str]) -> str:
    assert argv[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    return base64.b64decode(argv[4]).decode("utf-16-le")


def test_every_windows_script_exists_and_parses() -> None:
    names = {p.stem for p in SCRIPTS}
    assert names >= {"file-hash", "boot-identity", "reboot", "shutdown", "make-directory"}
    for script in SCRIPTS:
        rendered = render_script(
            script.stem,
            path="C:\\x",
            delay_seconds=5,
            chunk_size=65536,
            pfx_path="C:\\c.pfx",
            pfx_password="p",
            user="u",
        )
        tree = PS.parse(rendered.encode())
        assert errors(tree.root_node) == [], script.name


def test_the_parser_does_catch_broken_powershell() -> None:
    assert errors(PS.parse(b"$x = (Get-Item 'a'\nif ($x { }").root_node)


@pytest.mark.parametrize("path", NASTY_PATHS)
def test_paths_stay_one_literal_whatever_they_hold(path: str) -> None:
    script = decode(WindowsAdapter().hash_argv(path))
    tree = PS.parse(script.encode())
    assert errors(tree.root_node) == []
    literals = [n for n in _walk(tree.root_node) if n.type == "string_literal"]
    assert ps_literal(path) in [n.text.decode() for n in literals if n.text]
    # Nothing of the path escaped into code: no subexpression or variable from it.
    code = script.replace(ps_literal(path), "''")
    assert "Remove-Item" not in code and "$env" not in code


def _walk(node: Node) -> list[Node]:
    nodes = [node]
    for child in node.children:
        nodes.extend(_walk(child))
    return nodes


def test_ps_literal_doubles_every_kind_of_single_quote() -> None:
    assert ps_literal("O'Brien") == "'O''Brien'"
    assert ps_literal("a\u2019b") == "'a\u2019\u2019b'"


def test_encoded_command_is_utf16le_base64() -> None:
    assert base64.b64decode(encode_command("Write-Output 'ü'")).decode("utf-16-le") == "Write-Output 'ü'"
    argv = WindowsAdapter().script_argv("exit 3")
    assert decode(argv) == "exit 3"


def test_windows_adapter_scripts_do_what_they_say() -> None:
    adapter = WindowsAdapter()
    assert "Get-FileHash -LiteralPath $Path -Algorithm SHA256" in decode(adapter.hash_argv("C:\\a"))
    assert "LastBootUpTime" in decode(adapter.boot_id_argv())
    assert "shutdown.exe /r /t 5" in decode(adapter.reboot_argv())
    assert "shutdown.exe /s /t 5" in decode(adapter.shutdown_argv())
    assert adapter.join(adapter.temp_dir(), "x.ps1") == "C:\\Windows\\Temp\\vmforge\\x.ps1"
    hex_digest = "AB" * 32
    assert adapter.parse_hash(hex_digest.encode()) == hex_digest.lower()


def test_linux_adapter_argv() -> None:
    adapter = LinuxAdapter()
    assert adapter.script_argv("echo $HOME") == ["sh", "-c", "echo $HOME"]
    assert adapter.hash_argv("-odd name") == ["sha256sum", "--", "-odd name"]
    assert adapter.boot_id_argv() == ["cat", "/proc/sys/kernel/random/boot_id"]
    digest = "0" * 64
    assert adapter.parse_hash(f"{digest}  /tmp/x\n".encode()) == digest
    with pytest.raises(ValueError, match="no SHA-256"):
        adapter.parse_hash(b"sha256sum: /tmp/x: No such file or directory\n")
    assert adapter.join(adapter.temp_dir(), "f") == "/tmp/vmforge/f"


def test_adapter_chosen_from_what_the_agent_reports() -> None:
    windows = OsInfo("windows", "mswindows", "Microsoft Windows 11 Pro", "11", "22631", "x86_64")
    assert isinstance(adapter_for(windows), WindowsAdapter)
    assert isinstance(adapter_for(OsInfo("linux", "debian", "", "", "6.1", "x86_64")), LinuxAdapter)
    with pytest.raises(GuestError, match="no adapter"):
        adapter_for(OsInfo("unknown", "plan9", "", "", "", ""))


def test_scripts_are_real_files_in_the_data_folder() -> None:
    for script in SCRIPTS:
        assert isinstance(script, Path) and script.read_text().startswith("# vmforge:")
