"""The probe image's package facts are asked from apt once per state of apt's databases."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from vmforge.probe import image


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("Package: busybox-static\n")
    (root / "var/cache/apt").mkdir(parents=True)
    (root / "var/cache/apt/pkgcache.bin").write_bytes(b"cache")
    (root / "var/lib/apt/lists").mkdir(parents=True)
    (root / "var/lib/apt/lists/deb.debian.org_Packages").write_text("one")
    return root


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def fake() -> dict[str, Any]:
        calls.append(1)
        return {"packages": {"busybox-static": f"1:{len(calls)}"}, "kernel_package": "k", "host_libraries": {}}

    monkeypatch.setattr(image, "_apt_facts", fake)
    return calls


def test_unchanged_databases_are_answered_from_the_memo(fake_root: Path, tmp_path: Path, asked: list[int]) -> None:
    first = image.apt_facts(tmp_path / "memo", fake_root)
    again = image.apt_facts(tmp_path / "memo", fake_root)
    assert asked == [1] and again == first


@pytest.mark.parametrize(
    "change",
    ["var/lib/dpkg/status", "var/cache/apt/pkgcache.bin", "var/lib/apt/lists/deb.debian.org_Packages", "new-list"],
)
def test_any_change_to_apt_or_dpkg_asks_again(fake_root: Path, tmp_path: Path, asked: list[int], change: str) -> None:
    first = image.apt_facts(tmp_path / "memo", fake_root)
    if change == "new-list":  # apt-get update fetched another index
        (fake_root / "var/lib/apt/lists/security_Packages").write_text("two")
    else:
        path = fake_root / change
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = image.apt_facts(tmp_path / "memo", fake_root)
    assert len(asked) == 2 and second != first


def test_a_damaged_memo_is_replaced(fake_root: Path, tmp_path: Path, asked: list[int]) -> None:
    image.apt_facts(tmp_path / "memo", fake_root)
    (tmp_path / "memo" / image.APT_MEMO).write_text("{not json")
    image.apt_facts(tmp_path / "memo", fake_root)
    image.apt_facts(tmp_path / "memo", fake_root)
    assert asked == [1, 1]


def test_a_memo_of_another_format_is_not_trusted(
    fake_root: Path, tmp_path: Path, asked: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    image.apt_facts(tmp_path / "memo", fake_root)
    monkeypatch.setattr(image, "FORMAT", image.FORMAT + 1)
    image.apt_facts(tmp_path / "memo", fake_root)
    assert asked == [1, 1]
