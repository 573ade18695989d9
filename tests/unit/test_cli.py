"""The CLI contracts, exercised through the real entry point in a fresh process."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from vmforge import __version__


def assert_clean_error(result, code: int, fragment: str) -> None:
    assert result.code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.stderr
    assert result.stdout == ""


def test_version(vmforge) -> None:
    result = vmforge("--version")
    assert result.code == 0 and __version__ in result.stdout


def test_help_teaches(vmforge) -> None:
    result = vmforge("--help")
    assert result.code == 0
    for word in ("spec init", "Exit codes", "list"):
        assert word in result.stdout
    sub = vmforge("spec", "show", "--help")
    assert "--resolved" in sub.stdout and "--set" in sub.stdout and "--debug" in sub.stdout


def test_init_validate_show_chain(vmforge, isolated_env: Path) -> None:
    """The issue's 'done when' chain, verbatim."""
    assert vmforge("spec", "init", "x.toml").code == 0
    assert vmforge("spec", "validate", "--spec", "x.toml").code == 0
    result = vmforge("spec", "show", "--spec", "x.toml", "--json")
    assert result.code == 0
    doc = json.loads(result.stdout)  # exactly one JSON document
    assert doc["spec"]["vm"]["name"] == "win11"
    assert doc["spec"]["windows"]["password"] == "generate"
    assert result.stderr == ""


def test_init_refuses_to_overwrite(vmforge, isolated_env: Path) -> None:
    (isolated_env / "vmforge.toml").write_text("# mine\n")
    assert_clean_error(vmforge("spec", "init"), 2, "already exists")
    assert (isolated_env / "vmforge.toml").read_text() == "# mine\n"
    assert vmforge("spec", "init", "--force", "--name", "lab").code == 0
    assert tomllib.loads((isolated_env / "vmforge.toml").read_text())["vm"]["name"] == "lab"


def test_show_masks_secrets(vmforge, isolated_env: Path) -> None:
    (isolated_env / "vmforge.toml").write_text('[windows]\npassword = "Very-Secret-9"\nfamily = "11"\n')
    for args in (("spec", "show"), ("spec", "show", "--json"), ("spec", "show", "--resolved", "--json")):
        result = vmforge(*args)
        assert result.code == 0, result.stderr
        assert "Very-Secret-9" not in result.stdout + result.stderr
        assert "********" in result.stdout


def test_show_resolved(vmforge, isolated_env: Path) -> None:
    result = vmforge(
        "spec", "show", "--resolved", "--json", "--set", "windows.family=11", "--set", "ivshmem.enabled=true"
    )
    plan = json.loads(result.stdout)["plan"]
    assert plan["firmware"] == "uefi-secure" and plan["tpm"] is True
    assert plan["ivshmem"]["size"] == 32 * 1024**2
    human = vmforge("spec", "show", "--resolved", "--set", "windows.family=7")
    assert human.code == 0
    resolved = tomllib.loads(human.stdout)
    assert resolved["plan"]["firmware"] == "bios" and resolved["plan"]["disk"]["bus"] == "sata"


BROKEN = {
    "toml-syntax": ("[vm]\nmemory = 8GiB\n", "line 2"),
    "wrong-type": ('[vm]\nvcpus = "many"\n', "vm.vcpus = 'many'"),
    "negative-size": ('[disk]\nsize = "-1GiB"\n', "disk.size = '-1GiB'"),
    "unknown-key": ("[vm]\nvcpu = 4\n", "did you mean 'vm.vcpus'"),
    "version": ("version = 7\n", "version = 7 is not supported"),
    "missing-iso": ('[windows]\niso = "nowhere.iso"\n', "windows.iso"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_specs_exit_2_with_one_line(vmforge, isolated_env: Path, case: str) -> None:
    text, fragment = BROKEN[case]
    (isolated_env / "bad.toml").write_text(text)
    before = sorted(p.name for p in isolated_env.iterdir())
    assert_clean_error(vmforge("spec", "validate", "--spec", "bad.toml"), 2, fragment)
    result = vmforge("spec", "validate", "--spec", "bad.toml", "--json")
    assert result.code == 2
    error = json.loads(result.stdout)["error"]
    assert fragment in error["message"] and error["hint"] and error["exit_code"] == 2
    assert sorted(p.name for p in isolated_env.iterdir()) == before  # nothing written


def test_missing_spec(vmforge) -> None:
    assert_clean_error(vmforge("spec", "validate"), 2, "vmforge.toml does not exist")
    assert_clean_error(vmforge("spec", "validate", "--spec", "nope.toml"), 2, "nope.toml does not exist")


def test_usage_errors_exit_2_also_in_json(vmforge) -> None:
    assert_clean_error(vmforge("spec", "frobnicate"), 2, "No such command")
    result = vmforge("spec", "show", "--bogus", "--json")
    assert result.code == 2
    assert json.loads(result.stdout)["error"]["exit_code"] == 2
    assert_clean_error(vmforge("spec", "show", "--set", "novalue"), 2, "section.key=value")


def test_debug_shows_traceback(vmforge, isolated_env: Path) -> None:
    (isolated_env / "bad.toml").write_text("version = 3\n")
    quiet = vmforge("spec", "validate", "--spec", "bad.toml")
    loud = vmforge("spec", "validate", "--spec", "bad.toml", "--debug")
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and loud.code == 2


def test_unreachable_libvirt_is_runtime_error(vmforge) -> None:
    result = vmforge("list", "--connect", "qemu+unix:///system?socket=/nonexistent/sock", "--json")
    assert result.code == 1
    error = json.loads(result.stdout)["error"]
    assert "cannot connect to libvirt" in error["message"] and "libvirtd" in error["hint"]


def test_uri_libvirt_rejects_is_usage_error(vmforge) -> None:
    assert_clean_error(vmforge("list", "--connect", "nosuchdriver:///x"), 2, "does not accept this URI")
    bad = vmforge("list", "--set", "vm.connect=nosuchdriver:///system")
    assert_clean_error(bad, 2, "vm.connect = 'nosuchdriver:///system'")
