"""Pure parts of the images feature: labels, drift comparison, source choice, the store index, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmforge.errors import UsageError
from vmforge.images.files import copy_state, replace_state, state_digest, tree_digest
from vmforge.images.reprovision import choose_source, definition_drift
from vmforge.images.snapshot import KNOWN_GOOD_KEY, check_label, default_label, layer_name
from vmforge.images.store import IMAGE_KEY, Image, find_image, list_images, save_image, volume_name
from vmforge.state import VmDir, VmState

DOMAIN = """<domain type='qemu'><name>v</name><memory unit='KiB'>{mem}</memory><vcpu>1</vcpu>
<os><type machine='q35'>hvm</type><loader secure='yes'>/ovmf.fd</loader></os>
<devices><disk type='volume' device='disk'><source pool='p' volume='v.qcow2'/><target dev='vda' bus='virtio'/>
</disk>{tpm}</devices></domain>"""
TPM = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"


def test_labels() -> None:
    check_label("before-update_1.2")
    for bad in ("", "-x", "a/b", "x" * 41, "a b"):
        with pytest.raises(UsageError, match="not valid"):
            check_label(bad)
    from datetime import UTC, datetime

    assert default_label(lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20260102-030405"
    assert layer_name("win.qcow2", "good") == "win.snap-good.qcow2"


def test_definition_drift_names_each_difference() -> None:
    same = DOMAIN.format(mem=131072, tpm=TPM)
    assert definition_drift(same, same) == []
    drift = definition_drift(DOMAIN.format(mem=262144, tpm=""), same)
    assert drift == [
        "domain memory: is 262144, the plan says 131072",
        "domain tpm: is absent, the plan says tpm-crb",
        "domain tpm version: is absent, the plan says 2.0",
    ]


def test_source_choice(tmp_path: Path) -> None:
    vm_dir = VmDir("v", root=tmp_path)
    with pytest.raises(UsageError, match="neither a known-good snapshot nor an image"):
        choose_source(vm_dir, None)
    vm_dir.save(VmState("v", extra={IMAGE_KEY: "ab" * 32}))
    assert choose_source(vm_dir, None) == "image"
    with pytest.raises(UsageError, match="no known-good snapshot"):
        choose_source(vm_dir, "snapshot")
    vm_dir.save(VmState("v", extra={IMAGE_KEY: "ab" * 32, KNOWN_GOOD_KEY: "good"}))
    assert choose_source(vm_dir, None) == "snapshot"
    assert choose_source(vm_dir, "image") == "image"


def _image(image_id: str, label: str, created: str) -> Image:
    return Image(image_id, label, created, "linux", "p", volume_name(image_id), f"/p/{volume_name(image_id)}",
                 "0" * 64, 1, None, True, False, False)  # fmt: skip


def test_store_index_finds_by_id_prefix_and_label(tmp_path: Path) -> None:
    one = _image("a" * 64, "gold", "2026-01-01T00:00:00")
    two = _image("a" * 8 + "c" * 56, "gold", "2026-01-02T00:00:00")
    for image in (one, two):
        save_image(image, tmp_path)
    assert list_images(tmp_path) == [one, two]
    assert find_image("gold", tmp_path) == two  # the newest of a label
    assert find_image("aaaaaaaaa", tmp_path) == one
    with pytest.raises(UsageError, match="no single image matches 'aaaaaaaa'") as ambiguous:
        find_image("aaaaaaaa", tmp_path)
    assert ambiguous.value.hint == "give more digits of the id"
    with pytest.raises(UsageError, match="no single image matches 'silver'") as unknown:
        find_image("silver", tmp_path)
    assert unknown.value.hint == "'vmforge image list' shows the images"
    meta = tmp_path / "images" / one.id / "image.json"
    assert json.loads(meta.read_text())["volume"] == "vmforge-image-aaaaaaaaaaaaaaaa.qcow2"


def test_state_copies_keep_content_and_replace_exactly(tmp_path: Path) -> None:
    source = tmp_path / "tpm"
    (source / "tpm2").mkdir(parents=True)
    (source / "tpm2" / "tpm2-00.permall").write_bytes(b"state")
    copy_state(source, tmp_path / "saved")
    assert tree_digest(tmp_path / "saved") == tree_digest(source)
    (source / "tpm2" / "tpm2-00.permall").write_bytes(b"changed")
    (source / "extra").write_text("x")
    replace_state(tmp_path / "saved", source)
    assert state_digest(source) == state_digest(tmp_path / "saved")
    replace_state(None, source)
    assert state_digest(source) is None and not list(tmp_path.glob(".tpm.*"))


def test_snapshot_cli_without_state_lists_nothing(vmforge: Any) -> None:
    result = vmforge("snapshot", "list", "vm1", "--json")
    assert result.code == 0 and result.json() == {"name": "vm1", "known_good": None, "snapshots": []}
    assert vmforge("image", "list", "--json").json() == {"images": []}
    bad = vmforge("snapshot", "vm1", "a/b", "--connect", "test:///default")
    assert bad.code == 2 and "snapshot label 'a/b' is not valid" in bad.stderr
    missing = vmforge("snapshot", "vm1", "good", "--connect", "test:///default")
    assert missing.code == 2 and "there is no vmforge VM named 'vm1'" in missing.stderr
