from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import fakesysfs


def test_gpu_list_json_on_fake_workstation(vmforge: Any, tmp_path: Path) -> None:
    root = fakesysfs.two_gpu_workstation(tmp_path / "sys-root")
    result = vmforge("gpu", "list", "--json", "--sys-root", str(root))
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["iommu"] is True
    assert [g["address"] for g in data["gpus"]] == ["0000:00:02.0", "0000:01:00.0"]
    nvidia = data["gpus"][1]
    assert [f["address"] for f in nvidia["functions"]] == ["0000:01:00.0", "0000:01:00.1"]
    assert [(m["address"], m["bridge"]) for m in nvidia["iommu_group_members"]] == [
        ("0000:00:01.0", True),
        ("0000:01:00.0", False),
        ("0000:01:00.1", False),
    ]
    assert (nvidia["driver"], nvidia["boot_vga"], nvidia["reset_methods"]) == ("vfio-pci", False, ["bus"])


def test_gpu_list_human_reports_iommu_off(vmforge: Any, tmp_path: Path) -> None:
    root = fakesysfs.iommu_off(tmp_path / "sys-root")
    result = vmforge("gpu", "list", "--sys-root", str(root))
    assert result.code == 0, result.stderr
    assert "0000:01:00.0 10de:2204 driver=nvidia group=None" in result.stdout
    assert "IOMMU is off" in result.stdout


def test_gpu_list_real_sys(vmforge: Any) -> None:
    result = vmforge("gpu", "list", "--json")
    assert result.code == 0, result.stderr
    real_display = [
        p.name for p in Path("/sys/bus/pci/devices").iterdir() if (p / "class").read_text().startswith("0x03")
    ]
    assert sorted(g["address"] for g in result.json()["gpus"]) == sorted(real_display)
