"""Pure parts of the WinRM/SSH channels: command lines, envelope-sized chunks, CLIXML, address
choice, spec rules, and the guest scripts' PowerShell syntax (tree-sitter-powershell)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from tests.conftest import REPO
from tests.winrm_server.emulation import split_command_line
from vmforge.errors import SpecError
from vmforge.guest.certs import fingerprint_der, generate_certificate, pfx_bundle
from vmforge.guest.clixml import decode_stderr, first_error_line
from vmforge.guest.os_windows import render_script
from vmforge.guest.remote_access import pick_address
from vmforge.guest.winrm import ENVELOPE_OVERHEAD, upload_chunk_size, windows_command_line
from vmforge.spec import parse_spec

NEW_SCRIPTS = ["receive-file", "send-file", "os-info", "winrm-listener", "set-password", "remove-answer-copies"]


@pytest.mark.parametrize(
    "argv",
    [
        ["cmd.exe", "/c", "echo", "hi"],
        ["prog", "a b", 'quote"inside', "trailing\\", 'back\\\\slash\\"q', ""],
        ["x", "a&b", "c|d", "e>f", "g^h", "(paren)"],
    ],
)
def test_windows_command_line_round_trips(argv: list[str]) -> None:
    assert split_command_line(windows_command_line(argv)) == argv


def test_cmd_operators_are_always_quoted() -> None:
    line = windows_command_line(["echo", "a&calc"])
    assert line == 'echo "a&calc"'


def test_upload_chunks_fit_the_envelope() -> None:
    for envelope in (153600, 512000, 8192):
        chunk = upload_chunk_size(envelope)
        line = (chunk + 2) // 3 * 4 + 1  # base64 line plus newline
        sent = (line + 2) // 3 * 4  # base64 again in the Send body
        assert sent + ENVELOPE_OVERHEAD <= envelope
        assert sent + ENVELOPE_OVERHEAD > envelope - 64  # and uses it


def test_clixml_becomes_plain_text() -> None:
    raw = (
        b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        b"<S S=\"Error\">Get-Foo : The term 'Get-Foo' is not recognized_x000D__x000A_</S>"
        b'<S S="Error">At line:1 char:1_x000D__x000A_</S><Obj S="progress" RefId="0"><TN RefId="0"/></Obj></Objs>'
    )
    assert decode_stderr(raw) == b"Get-Foo : The term 'Get-Foo' is not recognized\nAt line:1 char:1\n"
    assert first_error_line(raw) == "Get-Foo : The term 'Get-Foo' is not recognized"
    assert decode_stderr(b"plain error\n") == b"plain error\n"
    assert decode_stderr(b"#< CLIXML\r\n<Objs broken") == b"#< CLIXML\r\n<Objs broken"


def test_address_choice_prefers_ipv4_and_skips_link_local() -> None:
    answer = {
        "lo": {"addrs": [{"type": 0, "addr": "127.0.0.1"}]},
        "eth0": {"addrs": [{"type": 1, "addr": "fe80::1"}, {"type": 1, "addr": "2001:db8::5"}]},
        "eth1": {"addrs": [{"type": 0, "addr": "169.254.3.3"}, {"type": 0, "addr": "192.0.2.7"}]},
    }
    assert pick_address(answer) == "192.0.2.7"
    assert pick_address({"eth0": {"addrs": [{"type": 1, "addr": "2001:db8::5"}]}}) == "2001:db8::5"
    assert pick_address({}) is None


def test_plain_http_needs_explicit_allowance() -> None:
    with pytest.raises(SpecError, match="allow_insecure"):
        parse_spec({"remote": {"winrm_scheme": "http"}}, label="test")
    spec = parse_spec({"remote": {"winrm_scheme": "http", "allow_insecure": True}}, label="test")
    assert spec.remote.winrm_scheme.value == "http"
    assert parse_spec({}, label="test").remote.winrm_scheme.value == "https"


def _parse_errors(source: bytes) -> list[str]:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(source)
    errors: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            errors.append(f"line {node.start_point[0] + 1}: {node.text[:60]!r}")
        stack.extend(node.children)
    return errors


@pytest.mark.parametrize("name", NEW_SCRIPTS)
def test_guest_scripts_parse_as_powershell(name: str) -> None:
    rendered = render_script(
        name,
        path="C:\\Users\\it's here\\f.bin",
        chunk_size=1024,
        pfx_file="win'rm.pfx",
        password_file="winrm-pfx.txt",
        https=1,
        basic=0,
        unencrypted=0,
        port=5986,
        user="vm'forge",
    )
    assert _parse_errors(rendered.encode("utf-8")) == []
    assert (REPO / "templates" / "guest" / "windows" / f"{name}.ps1").exists()


def test_the_syntax_check_can_fail() -> None:
    assert _parse_errors(b"$x = @{ 'a' = ") != []


def test_emulation_knows_every_vmforge_script() -> None:
    folder = REPO / "templates" / "guest" / "windows"
    firsts = [p.read_text().splitlines()[0] for p in sorted(folder.glob("*.ps1"))]
    assert all(line.startswith("# vmforge: ") and "{{" not in line for line in firsts)
    assert len(set(firsts)) == len(firsts)
    assert Path(folder).is_dir()


def test_pfx_bundle_holds_the_pinned_certificate() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

    pair = generate_certificate("vmft-winrm-pfx")
    key, cert, _ = pkcs12.load_key_and_certificates(pfx_bundle(pair, "Pfx-Pass-1"), b"Pfx-Pass-1")
    assert key is not None and cert is not None
    assert fingerprint_der(cert.public_bytes(Encoding.DER)) == pair.fingerprint
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(pfx_bundle(pair, "Pfx-Pass-1"), b"wrong")


def test_address_sources_are_asked_in_the_spec_order() -> None:
    from vmforge.guest.remote_access import guest_address

    asked: list[int] = []

    class Domain:  # what libvirt answers for a guest with an agent but no DHCP lease
        def interfaceAddresses(self, source: int) -> dict[str, object]:
            asked.append(source)
            if source == 0:
                raise RuntimeError("no lease")
            return {"eth0": {"addrs": [{"type": 0, "addr": "192.0.2.9"}]}}

    spec = parse_spec({"remote": {"address_sources": ["lease", "agent", "arp"]}}, label="test")
    assert guest_address(spec, Domain()) == "192.0.2.9"
    assert asked == [0, 1]
    asked.clear()
    arp_first = parse_spec({"remote": {"address_sources": ["arp", "lease"]}}, label="test")
    assert guest_address(arp_first, Domain()) == "192.0.2.9" and asked == [2]
