from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pycdlib

from vmforge.doctor import checks_media as media
from vmforge.doctor.model import Status
from vmforge.spec import WindowsFamily


def make_iso(path: Path, folders: list[str]) -> Path:
    """A small ISO with Joliet names, laid out like virtio-win's (viostor/w11/amd64/...)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3)
    made: set[str] = set()
    for folder in folders:
        parts = folder.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if sub not in made:
                iso_name = "/" + "/".join(p.upper().replace(".", "_")[:8] for p in parts[:i])
                iso.add_directory(iso_name, joliet_path=sub)
                made.add(sub)
    data = b"driver"
    iso.add_fp(io.BytesIO(data), len(data), "/README.TXT;1", joliet_path="/readme.txt")
    iso.write(str(path))
    iso.close()
    return path


def test_windows_iso_readable_and_not_an_iso(tmp_path: Path) -> None:
    assert media.check_iso("media.windows-iso", "windows.iso", None, required=True).status is Status.FAIL
    assert media.check_iso("media.windows-iso", "windows.iso", None, required=False).status is Status.SKIP
    iso = make_iso(tmp_path / "win.iso", ["/sources"])
    result = media.check_iso("media.windows-iso", "windows.iso", iso, required=True)
    assert result.status is Status.PASS and "iso9660" in result.summary
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\0" * 40000)
    assert "no ISO 9660 or UDF" in media.check_iso("media.windows-iso", "windows.iso", junk, True).summary
    missing = media.check_iso("media.windows-iso", "windows.iso", tmp_path / "none.iso", True)
    assert missing.status is Status.FAIL and "cannot be read" in missing.summary


def test_pinned_sha256(tmp_path: Path) -> None:
    iso = make_iso(tmp_path / "win.iso", ["/sources"])
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    assert media.check_iso_sha256(iso, None).status is Status.SKIP
    assert media.check_iso_sha256(iso, digest).status is Status.PASS
    wrong = media.check_iso_sha256(iso, "0" * 64)
    assert wrong.status is Status.FAIL and digest in wrong.summary


def test_virtio_win_matches_the_family(tmp_path: Path) -> None:
    iso = make_iso(tmp_path / "virtio-win.iso", ["/viostor/w10/amd64", "/viostor/w11/amd64", "/viostor/2k22/amd64"])
    assert media.check_virtio_win(iso, WindowsFamily.W11).status is Status.PASS
    assert media.check_virtio_win(iso, WindowsFamily.S2022).status is Status.PASS
    old = media.check_virtio_win(iso, WindowsFamily.W7)
    assert old.status is Status.FAIL and "/viostor/w7/amd64" in old.summary
    assert media.check_virtio_win(iso, None).status is Status.WARN
    assert media.check_virtio_win(None, WindowsFamily.W11).status is Status.FAIL


def test_windows_iso_inspectable(tmp_path: Path) -> None:
    """A real WIM (wimtools) in a Windows-like ISO is inspected; an ISO without install.wim fails."""
    from tests.media_factory import FakeImage, build_iso, build_wim

    wim = build_wim(tmp_path / "install.wim", [FakeImage("Windows 11 Pro", "Professional", 26100)])
    good = build_iso(tmp_path / "win11.iso", {"sources/install.wim": wim})
    result, inspection = media.check_iso_inspectable(good)
    assert result.status is Status.PASS and inspection is not None and inspection.family is WindowsFamily.W11
    assert "1: Windows 11 Pro" in result.evidence[0]
    bare = make_iso(tmp_path / "bare.iso", ["/sources"])
    result, inspection = media.check_iso_inspectable(bare)
    assert result.status is Status.FAIL and inspection is None and result.fix
    assert media.check_iso_inspectable(None)[0].status is Status.SKIP


def test_packages_verify_runs_the_create_preflight(tmp_path: Path) -> None:
    from vmforge.spec import parse_spec

    assert media.check_packages(parse_spec({}, label="t"), None).status is Status.SKIP
    # The built-in compositor needs an edition that supports specialized displays: unknown without an ISO.
    spec = parse_spec({"packages": [{"name": "compositor"}]}, label="t")
    missing = media.check_packages(spec, None)
    assert missing.status is Status.FAIL and "edition is unknown" in missing.summary and missing.fix
    # MttVDD's driver files are user-supplied and absent here: named one by one.
    absent = media.check_packages(parse_spec({"packages": [{"name": "mttvdd"}]}, label="t"), None)
    assert absent.status is Status.FAIL and "MttVDD" in absent.summary, absent
