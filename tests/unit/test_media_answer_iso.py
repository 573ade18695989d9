"""The answer-ISO writer: files on disk and bytes give the same image; a changed file is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pycdlib.pycdlibexception import PyCdlibInvalidInput

from vmforge.errors import VmforgeError
from vmforge.media.answer_iso import FileOnDisk, build_answer_iso, inputs_digest, write_answer_iso


def _on_disk(tmp: Path, name: str, data: bytes) -> FileOnDisk:
    path = tmp / name.replace("/", "_")
    path.write_bytes(data)
    return FileOnDisk(path, hashlib.sha256(data).hexdigest(), len(data))


def test_files_on_disk_give_the_same_image_and_digest_as_bytes(tmp_path: Path) -> None:
    contents = {
        "autounattend.xml": b"<unattend/>",
        "vmforge/packages/tool/tool.exe": bytes(range(256)) * 4099,  # not a multiple of 2048
        "vmforge/packages/tool/empty.txt": b"",
    }
    mixed = {
        "autounattend.xml": contents["autounattend.xml"],
        **{n: _on_disk(tmp_path, n, d) for n, d in contents.items() if n != "autounattend.xml"},
    }
    assert inputs_digest(mixed, 7) == inputs_digest(contents, 7)
    out = tmp_path / "answer.iso"
    write_answer_iso(out, mixed, 7)  # file -> file: copied by the kernel
    assert out.read_bytes() == build_answer_iso(contents, 7)  # bytes -> memory: pycdlib's own loop


def test_a_file_that_changed_since_it_was_checked_is_refused(tmp_path: Path) -> None:
    entry = _on_disk(tmp_path, "pkg.bin", b"12345")
    entry.path.write_bytes(b"123456")
    out = tmp_path / "answer.iso"
    with pytest.raises(VmforgeError, match="changed size since it was checked"):
        write_answer_iso(out, {"vmforge/packages/p/pkg.bin": entry})
    entry.path.unlink()
    with pytest.raises(VmforgeError, match="cannot be read"):
        write_answer_iso(out, {"vmforge/packages/p/pkg.bin": entry})
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []  # no image, no temporary file


def test_the_normpath_shortcut_agrees_with_pycdlibs_own() -> None:
    from vmforge.media.answer_iso import _ORIGINAL_NORMPATH, _normpath

    for path in ("/a", "/$WinPEDriver$/viostor/x.inf", "/a.b/c", "/", "/a/", "/a//b", "/./a", "/a/../b", "/.x/y", ""):
        assert _normpath(path) == _ORIGINAL_NORMPATH(path), path
    for bad in ("a/b", "../a"):
        with pytest.raises(PyCdlibInvalidInput):
            _normpath(bad)
