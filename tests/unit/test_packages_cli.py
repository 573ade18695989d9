"""'vmforge packages list|verify' in a subprocess, as users run them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.packages_support import write_idd_package


def state_packages() -> Path:
    return Path(os.environ["VMFORGE_STATE_DIR"]) / "packages"


def test_list_shows_builtin_packages_and_where_their_files_go(vmforge: Any) -> None:
    result = vmforge("packages", "list", "--json")
    assert result.code == 0, result.stderr
    data = result.json()
    names = [p["name"] for p in data["packages"]]
    assert names == ["compositor", "mttvdd", "virtio-ivshmem", "virtio-win-guest-tools"]
    mttvdd = data["packages"][1]
    assert mttvdd["kind"] == "driver" and mttvdd["files_total"] == 4 and mttvdd["files_ok"] == 0
    assert mttvdd["files_dir"] == str(state_packages() / "mttvdd")
    text = vmforge("packages", "list")
    assert text.code == 0 and "mttvdd" in text.stdout and "4 file(s) missing/bad" in text.stdout


def test_verify_names_every_missing_file_then_passes(vmforge: Any) -> None:
    result = vmforge("packages", "verify", "virtio-ivshmem")
    assert result.code == 3
    folder = state_packages() / "virtio-ivshmem"
    assert result.stdout.splitlines() == [
        f"virtio-ivshmem: {name}: missing (expected at {folder / name})"
        for name in ("ivshmem.inf", "ivshmem.cat", "ivshmem.sys")
    ]
    assert result.stderr.startswith("error: virtio-ivshmem: ivshmem.inf: missing")
    assert "(and 2 more)" in result.stderr and f"hint: put the files in {folder}" in result.stderr
    folder.mkdir(parents=True)
    for name in ("ivshmem.inf", "ivshmem.cat", "ivshmem.sys"):
        (folder / name).write_bytes(b"x")
    ok = vmforge("packages", "verify", "virtio-ivshmem")
    assert ok.code == 0 and ok.stdout == "virtio-ivshmem: all 3 files present and matching\n"


def test_verify_a_package_folder_names_the_sha_mismatch(vmforge: Any, tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd")
    (folder / "TestIdd.dll").write_bytes(b"other build")
    result = vmforge("packages", "verify", str(folder), "--json")
    assert result.code == 3
    error = result.json()["error"]
    actual = hashlib.sha256(b"other build").hexdigest()
    assert error["message"].startswith(f"testidd: TestIdd.dll: sha256 {actual} does not match the manifest's ")
    files = {f["path"]: f["status"] for f in error["report"][0]["files"]}
    assert files == {"TestIdd.inf": "ok", "TestIdd.cat": "ok", "TestIdd.dll": "mismatch", "TestIdd.cer": "ok"}


def test_unknown_package_is_a_usage_error(vmforge: Any) -> None:
    result = vmforge("packages", "verify", "nope")
    assert result.code == 2
    assert result.stderr.startswith("error: no package 'nope' (looked in guest-drivers/")
