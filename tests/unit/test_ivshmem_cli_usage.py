from __future__ import annotations

from pathlib import Path
from typing import Any


def test_bench_smoke_runs_two_processes_and_reports_ratios(vmforge: Any) -> None:
    before = set(Path("/dev/shm").glob("vmforge-bench-*"))
    result = vmforge("channel", "bench", "--resolution", "320x240", "--frames", "5", "--pings", "50", "--json")
    assert result.code == 0, result.stderr
    data = result.json()
    frames, latency = data["frames"], data["latency_us"]
    assert data["resolution"] == "320x240"
    assert 1 <= frames["delivered"] <= 5 and frames["ratio_to_memcpy"] > 0
    assert frames["consumer_cpu_ratio_to_memcpy"] > 0 and frames["memcpy_cpu_gib_per_s"] > 0
    assert frames["target_ratio"] == 0.5 and isinstance(frames["meets_target"], bool)
    assert latency["samples"] == 50 and 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert set(Path("/dev/shm").glob("vmforge-bench-*")) <= before  # its shm file is removed


def test_check_without_ivshmem_in_the_spec_is_a_usage_error(vmforge: Any) -> None:
    result = vmforge("channel", "check", "win11", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert "has no ivshmem device" in error["message"] and "--shm" in error["hint"]


def test_bad_resolution_is_a_usage_error(vmforge: Any) -> None:
    result = vmforge("channel", "bench", "--resolution", "4k")
    assert result.code == 2
    assert "WIDTHxHEIGHT" in result.stderr


def test_check_with_a_missing_backing_file(vmforge: Any, tmp_path: Path) -> None:
    result = vmforge("channel", "check", "gone", "--shm", str(tmp_path / "nope"))
    assert result.code == 1
    assert "does not exist" in result.stderr and "start the VM" in result.stderr


def test_check_on_a_char_device_takes_its_size(vmforge: Any) -> None:
    # /dev/zero stands in for /dev/kvmfr0: a char device needs --size (or the plan's size)
    result = vmforge("channel", "check", "x", "--shm", "/dev/zero", "--timeout", "0.2")
    assert result.code == 1 and "its size must be given" in result.stderr
    result = vmforge(
        "channel", "check", "x", "--shm", "/dev/zero", "--size", "8MiB", "--resolution", "64x64", "--timeout", "0.2"
    )
    assert result.code == 1 and "no guest peer attached" in result.stderr
