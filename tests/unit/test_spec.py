"""The spec contract: parsing, defaults, overrides, and one test per kind of bad input."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from vmforge.docgen import spec_reference
from vmforge.errors import SpecError
from vmforge.spec import Overrides, Spec, check_files, iter_fields, load_spec, parse_spec
from vmforge.templating import render_template

REPO = Path(__file__).resolve().parents[2]


def write(tmp: Path, text: str, name: str = "vmforge.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def problems_of(path: Path | None, overrides: Overrides | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides, require_file=True)
    return info.value.problems


def test_defaults_are_a_valid_spec() -> None:
    spec = Spec()
    assert spec.vm.connect == "qemu:///system"
    assert spec.vm.virt_type.value == "kvm"
    assert spec.vm.memory == 4 * 1024**3
    assert spec.windows.password.get_secret_value() == "generate"


def test_spec_is_immutable() -> None:
    spec = Spec()
    with pytest.raises(ValidationError):
        spec.vm.vcpus = 4  # type: ignore[misc]


def test_full_file_parses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
version = 1
os = "windows"
[vm]
name = "win11"
memory = "8GiB"
vcpus = 4
virt_type = "qemu"
[disk]
size = "80GiB"
[display]
resolution = "3840x2160"
heads = 2
[gpu]
devices = ["0000:01:00.0", "10de:2204"]
[ivshmem]
enabled = true
size = "64MiB"
model = "doorbell"
[[packages]]
name = "mttvdd"
[timeouts]
install = "90m"
""",
    )
    spec, source = load_spec(path)
    assert source == path
    assert spec.vm.memory == 8 * 1024**3
    assert spec.disk.size == 80 * 1024**3
    assert (spec.display.width, spec.display.height) == (3840, 2160)
    assert spec.gpu.devices == ("0000:01:00.0", "10de:2204")
    assert spec.ivshmem.size == 64 * 1024**2
    assert spec.packages[0].name == "mttvdd"
    assert spec.timeouts.install == 5400


def test_missing_default_spec_is_a_clear_error(tmp_path: Path) -> None:
    (problem,) = problems_of(None)
    assert "vmforge.toml does not exist" in problem


def test_missing_named_spec(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nope.toml")
    assert "nope.toml does not exist" in problem


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "version = 1\n[vm]\nmemory = 8GiB\n")
    (problem,) = problems_of(path)
    assert str(path) in problem
    assert "line 3" in problem and "column" in problem


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[vm]\nvcpus = "lots"\n')
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: vm.vcpus = 'lots':")


def test_negative_size(tmp_path: Path) -> None:
    path = write(tmp_path, '[disk]\nsize = "-4GiB"\n')
    (problem,) = problems_of(path)
    assert "disk.size = '-4GiB'" in problem and "positive" in problem


def test_unknown_key_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, '[vm]\nmemroy = "8GiB"\n')
    (problem,) = problems_of(path)
    assert "unknown key 'vm.memroy'" in problem
    assert "did you mean 'vm.memory'?" in problem


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[wndows]\niso = 'x'\n")
    (problem,) = problems_of(path)
    assert "unknown key 'wndows'" in problem and "did you mean 'windows'" in problem


def test_unsupported_version(tmp_path: Path) -> None:
    path = write(tmp_path, "version = 2\n")
    (problem,) = problems_of(path)
    assert "version = 2 is not supported" in problem


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[vm]\nvcpus = 0\nmemroy = 1\n[display]\nresolution = "9000x9000"\n')
    problems = problems_of(path)
    assert len(problems) == 3
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "(and 2 more problems)" in info.value.message


@pytest.mark.parametrize(
    ("section", "text", "fragment"),
    [
        ("vm", 'name = "bad name!"', "vm.name"),
        ("vm", 'connect = "system"', "libvirt URI"),
        ("display", 'resolution = "8000x4320"', "7680x4320"),
        ("gpu", 'devices = ["01:00.0"]', "neither a PCI address"),
        ("ivshmem", 'size = "48MiB"', "power of two"),
        ("windows", 'iso_sha256 = "abc"', "64 hexadecimal"),
        ("windows", 'computer_name = "MUCH-TOO-LONG-A-NAME"', "1-15"),
        ("network", 'mac = "zz"', "MAC address"),
        ("timeouts", 'install = "soon"', "duration"),
    ],
)
def test_field_checks(tmp_path: Path, section: str, text: str, fragment: str) -> None:
    path = write(tmp_path, f"[{section}]\n{text}\n")
    (problem,) = problems_of(path)
    assert fragment in problem


def test_password_never_shown_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[windows]\npassword = 12345678\n")
    (problem,) = problems_of(path)
    assert "12345678" not in problem and "********" in problem


def test_overrides_win_and_are_named_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[vm]\nvcpus = 2\n")
    spec, _ = load_spec(path, Overrides(["vm.vcpus=6", "windows.edition=3"], {"vm.memory": "8GiB", "vm.name": "x"}))
    assert spec.vm.vcpus == 6 and spec.vm.memory == 8 * 1024**3 and spec.vm.name == "x"
    assert spec.windows.edition == 3
    (problem,) = problems_of(path, Overrides(["vm.vcpus=-2"]))
    assert problem.startswith("--set vm.vcpus: vm.vcpus = -2")
    (problem,) = problems_of(path, Overrides(fields={"vm.memory": "-1GiB"}))
    assert problem.startswith("--memory:")


def test_override_family_as_number() -> None:
    spec, _ = load_spec(None, Overrides(["windows.family=8.1"]))
    assert spec.windows.family.value == "8.1"


@pytest.mark.parametrize("bad", ["novalue", "=3", "VM.x=1", "vm=3"])
def test_malformed_set(bad: str) -> None:
    with pytest.raises(SpecError, match=r"section\.key=value"):
        Overrides([bad])


def test_relative_paths_are_relative_to_the_spec_file(tmp_path: Path) -> None:
    sub = tmp_path / "specs"
    sub.mkdir()
    (sub / "win.iso").write_bytes(b"x")
    path = write(sub, '[windows]\niso = "win.iso"\n')
    spec, _ = load_spec(path)
    assert spec.windows.iso == sub / "win.iso"
    assert check_files(spec) == []


def test_unreadable_or_missing_iso_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[windows]\niso = "missing.iso"\n[virtio_win]\niso = "."\n')
    spec, _ = load_spec(path)
    problems = check_files(spec)
    assert any("windows.iso" in p and "no such file" in p for p in problems)
    assert any("virtio_win.iso" in p and "not a regular file" in p for p in problems)


def test_secrets_are_masked_and_not_hashed() -> None:
    a = parse_spec({"windows": {"password": "Secret-One-1"}}, label="t")
    b = parse_spec({"windows": {"password": "Secret-Two-2"}}, label="t")
    assert a.to_data()["windows"]["password"] == "********"
    assert "Secret-One-1" not in json.dumps(a.to_data())
    assert a.digest() == b.digest()
    assert a.to_data(reveal_secrets=True)["windows"]["password"] == "Secret-One-1"


def test_digest_changes_with_content() -> None:
    assert parse_spec({"vm": {"vcpus": 2}}, label="t").digest() != parse_spec({"vm": {"vcpus": 3}}, label="t").digest()


def test_show_data_round_trips() -> None:
    """What `spec show --json` prints is itself a valid spec that means the same thing."""
    spec = parse_spec(
        {"vm": {"memory": "6GiB", "name": "rt"}, "ivshmem": {"enabled": True}, "packages": [{"name": "mttvdd"}]},
        label="t",
    )
    again = parse_spec(json.loads(json.dumps(spec.to_data())), label="t")
    assert again == spec


def test_starter_spec_is_valid_and_documents_every_field(tmp_path: Path) -> None:
    text = render_template("spec/starter.toml.j2", name="demo", path_name="vmforge.toml")
    spec = parse_spec(tomllib.loads(text), label="starter")
    assert spec.vm.name == "demo"
    missing = []
    for dotted, _field in iter_fields():
        leaf = dotted.rsplit(".", 1)[-1]
        if f"{leaf} =" not in text:
            missing.append(dotted)
    assert missing == [], f"starter spec does not mention: {missing}"


def test_reference_docs_are_current() -> None:
    committed = (REPO / "docs" / "spec-reference.md").read_text()
    assert committed == spec_reference(), "run 'make docs' to regenerate docs/spec-reference.md"


def test_vm_cpu_features_are_checked_when_the_spec_is_read() -> None:
    good = parse_spec({"os": "probe", "vm": {"name": "c", "cpu": "qemu64,+rdrand"}}, label="t")
    assert good.vm.cpu == "qemu64,+rdrand"
    with pytest.raises(SpecError, match="rdrand"):
        parse_spec({"os": "probe", "vm": {"name": "c", "cpu": "qemu64,rdrand"}}, label="t")
