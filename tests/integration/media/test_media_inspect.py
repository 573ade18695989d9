"""ISO inspection against real WIM/ESD files (wimtools) in pycdlib-built ISOs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.media_factory import FakeImage, build_iso, build_wim
from vmforge.errors import VmforgeError
from vmforge.media import checksum
from vmforge.media.iso_inspect import inspect_iso, inspect_spec_iso
from vmforge.media.wim import read_wim_info
from vmforge.spec import WindowsFamily

pytestmark = pytest.mark.integration


def _wiminfo(path: Path) -> dict[int, dict[str, str]]:
    """wimlib's own reading of the file: {index: {field: value}}."""
    out = subprocess.run(["wiminfo", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout
    images: dict[int, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Index":
            current = images.setdefault(int(value), {})
        elif current is not None:
            current[key] = value
    return images


@pytest.mark.parametrize("name", ["win11-install.wim", "win11-install.esd", "s2022-install.wim"])
def test_wim_reader_agrees_with_wiminfo(
    media_dir: Path, win11_iso: Path, win11_esd_iso: Path, server2022_iso: Path, name: str
) -> None:
    path = media_dir / name
    with path.open("rb") as handle:
        info = read_wim_info(handle, name)
    reference = _wiminfo(path)
    assert sorted(reference) == [i.index for i in info.images]
    arch_names = {"x86_64": "amd64", "x86": "x86", "ARM64": "arm64"}
    for image in info.images:
        ref = reference[image.index]
        assert image.name == ref["Name"]
        assert image.edition_id == ref["Edition ID"]
        assert image.installation_type == ref["Installation Type"]
        assert image.build == int(ref["Build"])
        assert image.arch == arch_names[ref["Architecture"]]
        assert list(image.languages) == ref["Languages"].split()


def test_win11_iso_inspection(win11_iso: Path) -> None:
    result = inspect_iso(win11_iso)
    assert result.family is WindowsFamily.W11
    assert result.volume_id == "CCCOMA_X64FRE_EN-US_DV9"
    assert result.boot == ("bios", "uefi")
    assert result.install_file == "/sources/install.wim"
    assert result.boot_wim_images == 2
    assert "udf" in result.filesystems
    assert [(i.index, i.edition_id) for i in result.images] == [(1, "Core"), (2, "Professional"), (3, "Education")]
    assert result.images[2].languages == ("en-US", "de-DE")
    assert result.find_image("windows 11 pro") == result.images[1]
    assert result.find_image(3) == result.images[2]
    assert result.find_image("Windows 11 Ultimate") is None


def test_esd_and_server_and_legacy(win11_esd_iso: Path, server2022_iso: Path, win7_iso: Path) -> None:
    esd = inspect_iso(win11_esd_iso)
    assert (esd.install_format, esd.family) == ("esd", WindowsFamily.W11)
    server = inspect_iso(server2022_iso)
    assert server.family is WindowsFamily.S2022
    assert [i.installation_type for i in server.images] == ["Server Core", "Server", "Server Core", "Server"]
    legacy = inspect_iso(win7_iso)
    assert (legacy.family, legacy.boot) == (WindowsFamily.W7, ("bios",))


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [("win11_iso", "Windows 11"), ("server2022_iso", "Windows Server 2022"), ("win7_iso", "Windows 7")],
)
def test_osinfo_detect_calls_fixtures_windows_installers(
    request: pytest.FixtureRequest, fixture: str, expected: str
) -> None:
    iso = request.getfixturevalue(fixture)
    out = subprocess.run(["osinfo-detect", str(iso)], capture_output=True, text=True, check=True, timeout=60).stdout
    assert f"installer for OS 'Microsoft {expected}" in out


def test_inspection_reads_only_headers(media_dir: Path) -> None:
    """A 300 MiB install.wim (mostly incompressible data) inspects in well under a second."""
    tree = media_dir / "big.tree"
    (tree / "Windows").mkdir(parents=True, exist_ok=True)
    (tree / "Windows" / "big.bin").write_bytes(os.urandom(300 * 1024**2))
    wim = media_dir / "big.wim"
    subprocess.run(
        ["wimcapture", str(tree), str(wim), "Windows 10 Pro", "--compress=none",
         "--image-property", "WINDOWS/EDITIONID=Professional", "--image-property", "WINDOWS/ARCH=9",
         "--image-property", "WINDOWS/INSTALLATIONTYPE=Client", "--image-property", "WINDOWS/VERSION/MAJOR=10",
         "--image-property", "WINDOWS/VERSION/BUILD=19045"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (tree / "Windows" / "big.bin").unlink()
    iso = build_iso(media_dir / "big.iso", {"sources/install.wim": wim})
    wim.unlink()
    start = time.perf_counter()
    result = inspect_iso(iso)
    elapsed = time.perf_counter() - start
    assert result.family is WindowsFamily.W10
    assert elapsed < 1.0, f"inspection took {elapsed:.2f}s"
    iso.unlink()


def _corrupt_copy(source: Path, out: Path, offset: int, data: bytes | None = None, truncate: int | None = None) -> Path:
    raw = bytearray(source.read_bytes())
    if data is not None:
        raw[offset : offset + len(data)] = data
    if truncate is not None:
        raw = raw[:truncate]
    out.write_bytes(bytes(raw))
    return out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"offset": 0, "data": b"XXWIM\0\0\0"}, "not a WIM file"),
        ({"offset": 0, "truncate": 100}, "truncated WIM header"),
        ({"offset": 8, "data": b"\x10\0\0\0"}, "corrupt WIM header"),
        ({"offset": 72, "data": b"\xff\xff\xff\xff\xff\x00\x00\x00"}, "corrupt WIM header"),
        ({"offset": 0, "truncate": -200}, "truncated WIM"),
    ],
)
def test_damaged_wim_is_a_one_line_error(media_dir: Path, damage: dict[str, Any], message: str) -> None:
    source = media_dir / "win11-install.wim"
    if damage.get("truncate") is not None and damage["truncate"] < 0:
        damage = {"offset": 0, "truncate": source.stat().st_size + damage["truncate"]}
    bad = _corrupt_copy(source, media_dir / "bad.wim", **damage)
    iso = build_iso(media_dir / "bad.iso", {"sources/install.wim": bad})
    with pytest.raises(VmforgeError, match=message) as info:
        inspect_iso(iso)
    assert "\n" not in info.value.message and info.value.hint


def test_no_install_image_and_unsupported_version(media_dir: Path) -> None:
    iso = build_iso(media_dir / "empty.iso", {"sources/setup.exe": b"MZ"})
    with pytest.raises(VmforgeError, match=r"no sources/install\.wim or install\.esd"):
        inspect_iso(iso)
    wim = build_wim(media_dir / "vista.wim", (FakeImage("Windows Vista", "Business", 6002, major=6, minor=0),))
    iso = build_iso(media_dir / "vista.iso", {"sources/install.wim": wim})
    with pytest.raises(VmforgeError, match="not a Windows version vmforge supports"):
        inspect_iso(iso)


def test_sha256_cached_and_mismatch_is_an_error(win7_iso: Path, tmp_path: Path) -> None:
    expected = subprocess.run(["sha256sum", str(win7_iso)], capture_output=True, text=True, check=True).stdout.split()[
        0
    ]
    assert checksum.cached_sha256(win7_iso) is None
    result = inspect_spec_iso(win7_iso, expected)
    assert result.iso_sha256 == expected
    assert result.media_facts().iso_sha256 == expected
    assert checksum.cached_sha256(win7_iso) == expected
    with pytest.raises(VmforgeError, match=r"windows\.iso_sha256 mismatch"):
        inspect_spec_iso(win7_iso, "0" * 64)
    # A changed file (new mtime/size) is hashed again, not served from the cache.
    copy = tmp_path / "copy.iso"
    copy.write_bytes(win7_iso.read_bytes())
    assert checksum.file_sha256(copy) == expected
    with copy.open("ab") as handle:
        handle.write(b"\0")
    assert checksum.cached_sha256(copy) is None
    assert checksum.file_sha256(copy) != expected


def test_cli_iso_inspect(vmforge: Any, win11_iso: Path, tmp_path: Path) -> None:
    result = vmforge("iso", "inspect", str(win11_iso), "--json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["family"] == "11" and data["boot"] == ["bios", "uefi"]
    assert [i["edition_id"] for i in data["images"]] == ["Core", "Professional", "Education"]
    human = vmforge("iso", "inspect", str(win11_iso))
    assert "Windows 11 Pro" in human.stdout and "Professional" in human.stdout
    bad = tmp_path / "not.iso"
    bad.write_bytes(b"hello" * 1000)
    failed = vmforge("iso", "inspect", str(bad), "--json")
    assert failed.code == 1
    assert "not a readable ISO image" in failed.json()["error"]["message"]


def test_spec_show_resolved_inspects_the_iso(vmforge: Any, win7_iso: Path, server2022_iso: Path) -> None:
    result = vmforge("spec", "show", "--resolved", "--json", "--set", f"windows.iso={win7_iso!s}")
    assert result.code == 0, result.stderr
    plan = result.json()["plan"]
    assert (plan["family"], plan["firmware"], plan["disk"]["bus"], plan["tpm"]) == ("7", "bios", "sata", False)
    result = vmforge("spec", "show", "--resolved", "--json", "--set", f"windows.iso={server2022_iso!s}")
    assert (result.json()["plan"]["family"], result.json()["plan"]["firmware"]) == ("2022", "uefi")
    mismatch = vmforge(
        "spec",
        "show",
        "--resolved",
        "--json",
        "--set",
        f"windows.iso={win7_iso!s}",
        "--set",
        f"windows.iso_sha256={'a' * 64}",
    )
    assert mismatch.code == 1
    assert "iso_sha256 mismatch" in mismatch.json()["error"]["message"]
