"""Storage on the real daemon: media upload through the stream API, overlay clones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import POOL
from vmforge.errors import OwnershipError
from vmforge.plan import DiskPlan
from vmforge.storage import create_overlay, create_volume, ensure_pool, lookup_volume, upload_volume

pytestmark = pytest.mark.integration


def disk(pool_dir: Path, volume: str = "vmft-dom-base.qcow2") -> DiskPlan:
    return DiskPlan(size=256 * 1024**2, bus="virtio", pool=POOL, pool_dir=pool_dir, volume=volume)


def test_upload_media_through_the_stream_api(system_conn: Any, pool_dir: Path, tmp_path: Path) -> None:
    pool = ensure_pool(system_conn, disk(pool_dir))
    source = tmp_path / "answer.iso"
    payload = os.urandom(5 * 1024**2 + 123)  # more than one chunk, not a multiple of it
    source.write_bytes(payload)
    volume = upload_volume(system_conn, pool, "vmft-dom-answer.iso", source)
    assert Path(volume.key()).read_bytes() == payload
    with pytest.raises(OwnershipError, match="already exists"):
        upload_volume(system_conn, pool, "vmft-dom-answer.iso", source)
    assert Path(volume.key()).read_bytes() == payload  # untouched by the refused upload


def test_overlay_clone_has_the_base_as_backing_file(system_conn: Any, pool_dir: Path) -> None:
    plan = disk(pool_dir)
    pool = ensure_pool(system_conn, plan)
    base = create_volume(pool, plan)
    clone = create_overlay(pool, "vmft-dom-clone.qcow2", base)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", "-U", clone.key()],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == base.key()
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == plan.size
    # The clone costs almost nothing on disk compared with its size.
    assert info["actual-size"] < 1024**2
    assert lookup_volume(pool, "vmft-dom-clone.qcow2") is not None
