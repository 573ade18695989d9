"""Answer media built from real fixture ISOs, read back with xorriso and isoinfo.

The probe guest mounts vmforge-written answer media with a real kernel in test_probe_boot.py
and test_probe_libvirt.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from tests.unit.test_media_bootstrap import PARSER
from vmforge.media.answer_iso import build_answer_iso
from vmforge.media.phases import parse_line
from vmforge.media.validate import validate_file

pytestmark = pytest.mark.integration


def _spec(tmp: Path, iso: Path, virtio: Path | None, **extra: str) -> Path:
    lines = ["[vm]", 'name = "vmft-media-build"', "[windows]", f'iso = "{iso}"', 'password = "Media-Pass-42"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    if virtio is not None:
        lines += ["[virtio_win]", f'iso = "{virtio}"']
    path = tmp / "vmforge.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _xorriso_files(iso: Path) -> list[str]:
    out = subprocess.run(
        ["xorriso", "-indev", str(iso), "-find", "/", "-type", "f"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return sorted(line.strip().strip("'") for line in out.splitlines() if line.strip())


def _extract(iso: Path, dest: Path) -> Path:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(dest)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return dest


def test_media_build_writes_a_readable_answer_iso(
    vmforge: Any, tmp_path: Path, win11_iso: Path, virtio_win_iso: Path
) -> None:
    spec = _spec(tmp_path, win11_iso, virtio_win_iso)
    out = tmp_path / "answer.iso"
    result = vmforge("media", "build", "--spec", str(spec), "-o", str(out), "--json")
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["template"] == "windows-11.xml.j2" and data["image"]["index"] == 2
    assert "Media-Pass-42" not in result.stdout + result.stderr
    debug = vmforge("media", "build", "--spec", str(spec), "-o", str(tmp_path / "debug.iso"), "--debug")
    assert debug.code == 0 and "Media-Pass-42" not in debug.stdout + debug.stderr

    files = _xorriso_files(out)
    assert files == sorted(f"/{name}" for name in data["files"])
    drivers = [f for f in files if f.startswith("/$WinPEDriver$/")]
    assert {f.split("/")[2] for f in drivers} == {"viostor", "vioscsi", "NetKVM"}
    assert all(f.split("/")[-1].endswith((".inf", ".sys", ".cat")) for f in drivers)

    tree = _extract(out, tmp_path / "x")
    for name in data["files"]:
        assert (tree / name).is_file(), name
    # Driver files are the w11/amd64 ones, byte for byte.
    viostor = (tree / "$WinPEDriver$" / "viostor" / "viostor.inf").read_bytes()
    assert viostor == b"; viostor for w11 amd64\r\n[Version]\r\n"
    answer = tree / "autounattend.xml"
    assert validate_file(answer).errors == []
    assert validate_file(answer, reference=None).findings == []
    assert "Media-Pass-42" not in answer.read_text()
    script = (tree / "vmforge" / "bootstrap.ps1").read_bytes()
    assert not PARSER.parse(script).root_node.has_error

    # Joliet and UDF are there for Windows; the volume label is the one vmforge sets.
    joliet = subprocess.run(["isoinfo", "-J", "-f", "-i", str(out)], capture_output=True, text=True, check=True).stdout
    assert "/$WinPEDriver$/NetKVM/netkvm.sys" in joliet and "/autounattend.xml" in joliet
    info = subprocess.run(["isoinfo", "-d", "-i", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Volume id: VMFORGE_ANSWER" in info and "Joliet" in info
    assert "NO Rock Ridge present" in info  # no reader needs it: xorriso above read the Joliet names
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    try:
        assert iso.has_udf()
        names = [c.file_identifier() for c in iso.list_children(udf_path="/") if c is not None]
        assert b"autounattend.xml" in names and b"$WinPEDriver$" in names
    finally:
        iso.close()


def test_media_is_reproducible_and_reused(
    vmforge: Any, tmp_path: Path, server2022_iso: Path, virtio_win_iso: Path
) -> None:
    spec = _spec(tmp_path, server2022_iso, virtio_win_iso)
    first = vmforge("media", "build", "--spec", str(spec), "--json")
    assert first.code == 0, first.stderr
    path = Path(first.json()["path"])
    assert path.parent.name == "media" and not first.json()["reused"]
    again = vmforge("media", "build", "--spec", str(spec), "--json")
    assert again.json()["reused"] and again.json()["path"] == str(path)
    out1, out2 = tmp_path / "a.iso", tmp_path / "b.iso"
    for out in (out1, out2):
        assert vmforge("media", "build", "--spec", str(spec), "-o", str(out)).code == 0
    assert out1.read_bytes() == out2.read_bytes() == path.read_bytes()
    changed = vmforge(
        "media", "build", "--spec", str(spec), "--set", "windows.timezone='Pacific Standard Time'", "--json"
    )
    assert not changed.json()["reused"] and changed.json()["path"] != str(path)
    assert not path.exists()  # the stale image is replaced


def test_in_memory_image_is_deterministic_across_time() -> None:
    files = {"autounattend.xml": b"<unattend/>", "vmforge/bootstrap.ps1": b"exit 0\r\n"}
    assert build_answer_iso(files) == build_answer_iso(dict(reversed(list(files.items()))))
    assert build_answer_iso(files, epoch=1) != build_answer_iso(files, epoch=2)


def test_generated_password_stays_in_the_secrets_file(vmforge: Any, tmp_path: Path, win7_iso: Path) -> None:
    spec = tmp_path / "vmforge.toml"
    spec.write_text(f'[vm]\nname = "vmft-media-gen"\n[windows]\niso = "{win7_iso}"\n')
    result = vmforge("media", "build", "--spec", str(spec), "--json")
    assert result.code == 0, result.stderr
    secrets = Path(result.json()["path"]).parent.parent / "secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    again = vmforge("media", "build", "--spec", str(spec), "--json")
    assert again.json()["reused"]  # the same password is reused, so the media is unchanged


@pytest.mark.parametrize(
    ("sets", "needs_virtio", "message"),
    [
        ((), False, "needs virtio drivers in Windows Setup, but virtio_win.iso is not set"),
        (("windows.edition='Windows 11 Ultimate'",), True, "is not in win11.iso (it holds 1: Windows 11 Home"),
        (("windows.product_key='WX4NM-KYWYW-QJJR4-XV3QB-6VM33'",), True, "generic key of ServerDatacenter"),
        (("windows.iso_sha256='" + "0" * 64 + "'",), True, "windows.iso_sha256 mismatch"),
        (("windows.password='p\u00e4ss-word-1'",), True, "windows.password has non-ASCII"),
    ],
)
def test_bad_input_writes_nothing(
    vmforge: Any, tmp_path: Path, win11_iso: Path, virtio_win_iso: Path, sets: tuple[str, ...], needs_virtio: bool,
    message: str,
) -> None:  # fmt: skip
    spec = _spec(tmp_path, win11_iso, virtio_win_iso if needs_virtio else None)
    out = tmp_path / "answer.iso"
    args = ["media", "build", "--spec", str(spec), "-o", str(out), "--json"]
    for item in sets:
        args += ["--set", item]
    result = vmforge(*args)
    assert result.code in (1, 2), result.stderr
    error = result.json()["error"]
    assert message in error["message"] and error["hint"]
    assert not out.exists()
    assert list(tmp_path.rglob("*.iso")) == []


def test_virtio_iso_without_drivers_for_the_family(
    vmforge: Any, tmp_path: Path, media_dir: Path, win11_iso: Path
) -> None:
    from tests.media_factory import build_iso

    old = build_iso(media_dir / "virtio-old.iso", {"viostor/w7/amd64/viostor.inf": b"x"}, bios=False, uefi=False)
    spec = _spec(tmp_path, win11_iso, old)
    result = vmforge("media", "build", "--spec", str(spec), "-o", str(tmp_path / "a.iso"), "--json")
    assert result.code == 1
    assert "has no viostor driver for Windows 11 amd64" in result.json()["error"]["message"]


def test_answer_render_and_validate_cli(vmforge: Any, tmp_path: Path, win11_iso: Path, peers: Path) -> None:
    spec = _spec(tmp_path, win11_iso, None, **{"edition": "'Windows 11 Education'"})
    out = tmp_path / "autounattend.xml"
    rendered = vmforge("answer", "render", "--spec", str(spec), "-o", str(out), "--json")
    assert rendered.code == 0, rendered.stderr
    assert rendered.json()["image"] == {"index": 3, "name": "Windows 11 Education"}
    checked = vmforge("answer", "validate", str(out), "--iso", str(win11_iso), "--json")
    assert checked.code == 0 and checked.json()["valid"]
    with_ref = vmforge(
        "answer", "validate", str(peers / "answer-files" / "dockur-win11x64.xml"),
        "--reference", str(peers / "unattend-schema"), "--json",
    )  # fmt: skip
    assert with_ref.code == 0 and with_ref.json()["warnings"] == 4
    # The same file against an ISO it does not fit: exit 3 with the findings.
    text = out.read_text().replace("<Value>3</Value>", "<Value>7</Value>")
    bad = tmp_path / "bad.xml"
    bad.write_text(text)
    failed = vmforge("answer", "validate", str(bad), "--iso", str(win11_iso), "--json")
    assert failed.code == 3
    findings = failed.json()["error"]["report"]["findings"]
    assert findings[0]["severity"] == "error" and "/IMAGE/INDEX = '7' is not in win11.iso" in findings[0]["message"]
    assert "ImageInstall/OSImage/InstallFrom/MetaData" in findings[0]["xpath"]
    human = vmforge("answer", "render", "--spec", str(spec))
    assert human.code == 0 and human.stdout.startswith("<?xml")
    assert parse_line("VMFORGE-PHASE pe-start") is not None


def _package_spec(tmp: Path, iso: Path, virtio: Path, folder: Path) -> Path:
    spec = _spec(tmp, iso, virtio)
    spec.write_text(spec.read_text() + f'[[packages]]\nname = "testidd"\npath = "{folder}"\n')
    return spec


def test_packages_ride_on_the_media_with_their_manifest_hashes(
    vmforge: Any, tmp_path: Path, win11_iso: Path, virtio_win_iso: Path
) -> None:
    from tests.packages_support import write_idd_package
    from vmforge.packages.manifest import load_manifest

    folder = write_idd_package(tmp_path / "testidd", dll=b"MZ" + bytes(range(256)) * 3000)  # 768 KB
    spec = _package_spec(tmp_path, win11_iso, virtio_win_iso, folder)
    out = tmp_path / "answer.iso"
    result = vmforge("media", "build", "--spec", str(spec), "-o", str(out), "--json")
    assert result.code == 0, result.stderr
    files = _xorriso_files(out)
    assert files == sorted(f"/{name}" for name in result.json()["files"])
    assert {f for f in files if f.startswith("/vmforge/")} == {
        "/vmforge/bootstrap.ps1",
        "/vmforge/stage-packages.ps1",
        "/vmforge/packages/SHA256SUMS",
        # the default remote.channels list WinRM: its set-up rides along (docs/remote.md)
        "/vmforge/winrm-listener.ps1",
        "/vmforge/winrm.pfx",
        "/vmforge/winrm-pfx.txt",
        *(f"/vmforge/packages/testidd/TestIdd.{ext}" for ext in ("inf", "cat", "dll", "cer")),
    }
    tree = _extract(out, tmp_path / "x")
    packages = tree / "vmforge" / "packages"
    # The real sha256sum accepts the list, and the list holds the manifest's pinned hashes.
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        check=False,
        cwd=packages,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    manifest = load_manifest(folder)
    sums = dict(reversed(line.split("  ", 1)) for line in (packages / "SHA256SUMS").read_text().splitlines())
    assert sums == {f"testidd/{f.path}": f.sha256 for f in manifest.files}
    for entry in manifest.files:
        assert (packages / "testidd" / entry.path).read_bytes() == (folder / entry.path).read_bytes()
    # Windows reads Joliet/UDF: the names are there too.
    joliet = subprocess.run(["isoinfo", "-J", "-f", "-i", str(out)], capture_output=True, text=True, check=True).stdout
    assert "/vmforge/packages/testidd/TestIdd.dll" in joliet and "/vmforge/stage-packages.ps1" in joliet


def test_media_are_rebuilt_when_a_package_file_changes(
    vmforge: Any, tmp_path: Path, win11_iso: Path, virtio_win_iso: Path
) -> None:
    from tests.packages_support import write_idd_package

    folder = write_idd_package(tmp_path / "testidd", pin_hashes=False)
    spec = _package_spec(tmp_path, win11_iso, virtio_win_iso, folder)
    first = vmforge("media", "build", "--spec", str(spec), "--json")
    assert first.code == 0, first.stderr
    again = vmforge("media", "build", "--spec", str(spec), "--json")
    assert again.json()["reused"] and again.json()["inputs_sha256"] == first.json()["inputs_sha256"]
    (folder / "TestIdd.dll").write_bytes(b"MZ test idd v2")
    changed = vmforge("media", "build", "--spec", str(spec), "--json")
    assert changed.code == 0, changed.stderr
    assert not changed.json()["reused"] and changed.json()["inputs_sha256"] != first.json()["inputs_sha256"]
    rebuilt = _extract(Path(changed.json()["path"]), tmp_path / "x")
    assert (rebuilt / "vmforge" / "packages" / "testidd" / "TestIdd.dll").read_bytes() == b"MZ test idd v2"
    assert not Path(first.json()["path"]).exists()


def test_a_package_file_that_fails_its_pinned_hash_writes_nothing(
    vmforge: Any, tmp_path: Path, win11_iso: Path, virtio_win_iso: Path
) -> None:
    from tests.packages_support import write_idd_package

    folder = write_idd_package(tmp_path / "testidd")
    (folder / "TestIdd.dll").write_bytes(b"MZ tampered")
    spec = _package_spec(tmp_path, win11_iso, virtio_win_iso, folder)
    out = tmp_path / "answer.iso"
    result = vmforge("media", "build", "--spec", str(spec), "-o", str(out), "--json")
    assert result.code == 2, result.stderr
    assert "TestIdd.dll: sha256" in result.json()["error"]["message"]
    assert list(tmp_path.rglob("*.iso")) == []
