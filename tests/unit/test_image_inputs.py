"""The image name: every non-secret input changes it, nothing else does."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from vmforge.images.inputs import ImageInputs, input_hash, package_digests, spec_inputs, templates_digest
from vmforge.plan import resolve_plan
from vmforge.resources import DataFolder, data_dir
from vmforge.spec import parse_spec

BASE = ImageInputs(
    os="windows",
    iso_sha256="a" * 64,
    edition="Windows 11 Pro",
    answer_file="<unattend/>",
    product_key_sha256=None,
    packages={"viogpu": "1" * 64},
    templates="t" * 64,
    guard_profile={"profile": "kiosk"},
    machine={"firmware": "uefi-secure", "tpm": True},
    vmforge_version="0.1.0",
)

CHANGES = {
    "os": "probe",
    "iso_sha256": "b" * 64,
    "edition": "Windows 11 Home",
    "answer_file": "<unattend><x/></unattend>",
    "product_key_sha256": "c" * 64,
    "packages": {"viogpu": "2" * 64},
    "templates": "u" * 64,
    "guard_profile": {"profile": "desktop"},
    "machine": {"firmware": "uefi", "tpm": True},
    "vmforge_version": "0.2.0",
}


def test_every_input_field_is_covered_by_a_change() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(ImageInputs)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_each_input_changes_the_hash(field: str) -> None:
    assert input_hash(dataclasses.replace(BASE, **{field: CHANGES[field]})) != input_hash(BASE)


def test_hash_is_stable_and_order_independent() -> None:
    reordered = dataclasses.replace(BASE, packages={"b": "2", "a": "1"})
    again = dataclasses.replace(BASE, packages={"a": "1", "b": "2"})
    assert input_hash(reordered) == input_hash(again)
    assert len(input_hash(BASE)) == 64


def _spec(tmp_path: Path, **windows: object) -> object:
    return parse_spec(
        {
            "vm": {"name": "gold"},
            "windows": {"family": "11", **windows},
            "packages": [{"name": "pkg", "path": str(tmp_path)}],
        },
        label="t",
    )


def test_spec_inputs_ignore_the_password_but_follow_edition_packages_and_shape(tmp_path: Path) -> None:
    (tmp_path / "package.toml").write_text("name = 'pkg'\n")
    one = _spec(tmp_path, password="first-Secret-1")
    two = _spec(tmp_path, password="second-Secret-2")
    plan = resolve_plan(one)  # type: ignore[arg-type]

    def digest(spec: object, **kw: object) -> str:
        return input_hash(spec_inputs(spec, resolve_plan(spec), iso_sha256="a" * 64, answer_file="x", **kw))  # type: ignore[arg-type]

    assert digest(one) == digest(two)
    assert "first-Secret-1" not in str(spec_inputs(one, plan, iso_sha256=None, answer_file=None).to_data())  # type: ignore[arg-type]
    assert digest(_spec(tmp_path, edition="Windows 11 Home")) != digest(one)
    assert digest(one, product_key="VK7JG-NPHTM-C97JM-9MPGT-3V66T") != digest(one)
    bigger = parse_spec({"vm": {"name": "gold"}, "windows": {"family": "11"}, "disk": {"size": "80GiB"}}, label="t")
    assert digest(bigger) != digest(parse_spec({"vm": {"name": "gold"}, "windows": {"family": "11"}}, label="t"))
    before, packages_before = digest(one), package_digests(one)  # type: ignore[arg-type]
    (tmp_path / "driver.inf").write_text("[Version]\n")
    assert package_digests(one) != packages_before  # type: ignore[arg-type]
    assert digest(one) != before


def test_a_template_edit_changes_the_templates_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = templates_digest()
    copy = tmp_path / "data"
    for folder in (DataFolder.TEMPLATES, DataFolder.ANSWER_FILES, DataFolder.GUEST_DRIVERS):
        shutil.copytree(data_dir(folder), copy / folder.value)
    monkeypatch.setenv("VMFORGE_DATA_DIR", str(copy))
    assert templates_digest() == before
    with (copy / "answer-files" / "windows-11.xml.j2").open("a") as handle:
        handle.write("{# local edit #}\n")
    assert templates_digest() != before
