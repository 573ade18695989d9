from __future__ import annotations

from pathlib import Path

import pytest

from vmforge.errors import SpecError
from vmforge.plan import MediaFacts, ivshmem_auto_size, resolve_plan
from vmforge.spec import WindowsFamily, parse_spec

MiB = 1024**2


def plan_for(data: dict, media: MediaFacts | None = None, env: dict | None = None):
    return resolve_plan(parse_spec(data, label="t"), media=media, env=env or {"HOME": "/home/u"})


@pytest.mark.parametrize(
    ("family", "firmware", "tpm", "bus"),
    [
        ("7", "bios", False, "sata"),
        ("8.1", "uefi", False, "virtio"),
        ("10", "uefi", False, "virtio"),
        ("11", "uefi-secure", True, "virtio"),
        ("2019", "uefi", False, "virtio"),
        ("2022", "uefi", False, "virtio"),
        ("2025", "uefi", False, "virtio"),
    ],
)
def test_os_dependent_defaults(family: str, firmware: str, tpm: bool, bus: str) -> None:
    plan = plan_for({}, MediaFacts(WindowsFamily(family)))
    assert (plan.firmware.value, plan.tpm, plan.disk.bus) == (firmware, tpm, bus)
    # The same from the spec's own family field.
    same = plan_for({"windows": {"family": family}})
    assert (same.firmware, same.tpm, same.disk.bus) == (plan.firmware, plan.tpm, plan.disk.bus)


def test_explicit_values_win_over_auto() -> None:
    plan = plan_for({"vm": {"firmware": "bios", "tpm": "on"}, "disk": {"bus": "scsi"}}, MediaFacts(WindowsFamily.W11))
    assert (plan.firmware.value, plan.tpm, plan.disk.bus) == ("bios", True, "scsi")
    assert plan.notes  # Windows 11 on BIOS is worth a note


def test_auto_without_family_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="needs the Windows family"):
        plan_for({})


def test_family_mismatch_with_iso() -> None:
    with pytest.raises(SpecError, match="ISO holds Windows 10"):
        plan_for({"windows": {"family": "11"}}, MediaFacts(WindowsFamily.W10))


def test_probe_needs_no_family() -> None:
    plan = plan_for({"os": "probe"})
    assert plan.family is None and plan.firmware.value == "bios" and plan.computer_name is None


def test_cpu_mode_follows_virt_type() -> None:
    assert plan_for({"windows": {"family": "10"}}).cpu_mode == "host-passthrough"
    assert plan_for({"windows": {"family": "10"}, "vm": {"virt_type": "qemu"}}).cpu_mode == "maximum"
    assert plan_for({"windows": {"family": "10"}, "vm": {"cpu": "Skylake-Client"}}).cpu_mode == "Skylake-Client"


@pytest.mark.parametrize(
    ("width", "height", "mib"),
    [(1920, 1080, 32), (2560, 1440, 64), (3840, 2160, 128), (5120, 2880, 256), (7680, 4320, 512)],
)
def test_ivshmem_size_rule(width: int, height: int, mib: int) -> None:
    assert ivshmem_auto_size(width, height) == mib * MiB


def test_ivshmem_plan() -> None:
    plan = plan_for(
        {
            "vm": {"name": "w"},
            "windows": {"family": "11"},
            "ivshmem": {"enabled": True},
            "display": {"resolution": "2560x1440"},
        }
    )
    assert plan.ivshmem is not None
    assert plan.ivshmem.name == "vmforge-w" and plan.ivshmem.size == 64 * MiB
    assert plan.ivshmem.path == Path("/dev/shm/vmforge-w")
    assert plan_for({"windows": {"family": "11"}}).ivshmem is None


def test_pool_dir_by_connection() -> None:
    assert plan_for({"windows": {"family": "11"}}).disk.pool_dir == Path("/var/lib/vmforge/images")
    session = plan_for({"windows": {"family": "11"}, "vm": {"connect": "qemu:///session"}}, env={"HOME": "/home/u"})
    assert session.disk.pool_dir == Path("/home/u/.local/share/vmforge/images")
    remote = plan_for({"windows": {"family": "11"}, "vm": {"connect": "qemu+ssh://host/system"}})
    assert remote.disk.pool_dir is None


def test_computer_name_derived_from_vm_name() -> None:
    plan = plan_for({"vm": {"name": "my_very.long-vm-name-here"}, "windows": {"family": "10"}})
    assert plan.computer_name == "MY-VERY-LONG-VM"
    assert len(plan.computer_name) <= 15


def test_plan_digest_is_stable_and_sensitive() -> None:
    a = plan_for({"windows": {"family": "11"}})
    assert a.digest() == plan_for({"windows": {"family": "11"}}).digest()
    assert a.digest() != plan_for({"windows": {"family": "11"}, "vm": {"vcpus": 3}}).digest()
