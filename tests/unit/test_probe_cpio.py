"""The initramfs writer, read back by the real cpio tool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmforge.probe import cpio


def entries() -> list[cpio.Entry]:
    return [
        cpio.directory("bin"),
        cpio.regular("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
        cpio.symlink("bin/sh", "hello"),
        cpio.directory("dev"),
        cpio.char_device("dev/console", 5, 1),
        cpio.regular("etc/odd", b"x" * 5),  # length not a multiple of 4: padding matters
        cpio.directory("etc"),
    ]


def test_real_cpio_lists_and_extracts_what_we_wrote(tmp_path: Path) -> None:
    assert shutil.which("cpio"), "cpio is missing: install Debian's cpio (scripts/setup-host)"
    image = tmp_path / "initrd.img"
    cpio.write_initramfs(image, entries())
    raw = image.read_bytes()
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=raw, capture_output=True, check=True).stdout.decode()
    lines = listing.splitlines()
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines]
    assert names == ["bin", "bin/hello", "bin/sh", "dev", "dev/console", "etc", "etc/odd"]
    assert any(line.startswith("crw-------") and "5,   1" in line for line in lines)
    assert any(line.startswith("lrwxrwxrwx") and "bin/sh -> hello" in line for line in lines)
    out = tmp_path / "x"
    out.mkdir()
    # Extract without device nodes (cpio would need root for mknod); the rest must be exact.
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", "bin/*", "etc/*"], input=raw, cwd=out, check=True
    )
    assert (out / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/hello").stat().st_mode & 0o777 == 0o755
    assert (out / "bin/sh").readlink() == Path("hello")
    assert (out / "etc/odd").read_bytes() == b"xxxxx"


def test_same_entries_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cpio.write_initramfs(a, entries())
    cpio.write_initramfs(b, list(reversed(entries())))
    assert a.read_bytes() == b.read_bytes()


def test_duplicates_and_absolute_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        cpio.write_initramfs(tmp_path / "x", [cpio.directory("a"), cpio.directory("a")])
    with pytest.raises(ValueError, match="bad"):
        cpio.write_initramfs(tmp_path / "x", [cpio.directory("/a")])
