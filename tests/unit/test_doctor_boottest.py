"""The boot test's decisions and its probe spec (the real boots through libvirtd are
integration tests: tests/integration/test_doctor_real.py).

The stand-in booter behaves like this machine: under KVM the guest prints nothing until the
deadline (nested KVM hangs), under TCG the probe's init prints its marker.
"""

from __future__ import annotations

from vmforge.doctor.boottest import Booter, BootOutcome, boot_test_spec, check_boot
from vmforge.doctor.model import Status
from vmforge.spec import Firmware, OsKind, Toggle, VirtType, parse_spec

MARKER = "VMFORGE-PHASE probe-init kernel=6.1.0-56-amd64"


def booter(kvm_boots: bool, tcg_boots: bool, calls: list[tuple[VirtType, float]]) -> Booter:
    def boot(virt_type: VirtType, deadline: float) -> BootOutcome:
        calls.append((virt_type, deadline))
        accel = "kvm" if virt_type is VirtType.KVM else "tcg"
        boots = kvm_boots if accel == "kvm" else tcg_boots
        if boots:
            return BootOutcome(accel, True, 4.2, MARKER, MARKER)
        return BootOutcome(
            accel, False, deadline, f"no sign of init within {deadline:.0f}s (the kernel printed nothing)"
        )

    return boot


def test_nested_kvm_fails_with_a_tcg_control_and_points_at_virt_type_qemu() -> None:
    calls: list[tuple[VirtType, float]] = []
    result = check_boot(booter(False, True, calls), VirtType.KVM, kvm_deadline=5.0, tcg_deadline=99.0)
    assert calls == [(VirtType.KVM, 5.0), (VirtType.QEMU, 99.0)]
    assert result.status is Status.FAIL and result.summary.startswith("KVM is unusable")
    assert "no sign of init within 5s" in result.summary
    assert result.fix and result.fix.startswith('set vm.virt_type = "qemu"')
    assert result.evidence[-1] == f"tcg control: booted after 4.2s: {MARKER}"


def test_working_kvm_and_tcg_pass_without_a_control() -> None:
    calls: list[tuple[VirtType, float]] = []
    assert check_boot(booter(True, True, calls), VirtType.KVM).status is Status.PASS
    result = check_boot(booter(False, True, calls), VirtType.QEMU, tcg_deadline=7.0)
    assert result.status is Status.PASS and list(result.evidence) == [f"tcg: booted after 4.2s: {MARKER}"]
    assert [c[0] for c in calls] == [VirtType.KVM, VirtType.QEMU]


def test_nothing_boots_is_a_warning_and_tcg_alone_a_failure() -> None:
    calls: list[tuple[VirtType, float]] = []
    assert check_boot(booter(False, False, calls), VirtType.KVM).status is Status.WARN
    tcg = check_boot(booter(False, False, calls), VirtType.QEMU)
    assert tcg.status is Status.FAIL and "even under TCG" in tcg.summary


def test_no_image_is_a_skip_with_the_reason() -> None:
    result = check_boot(None, VirtType.KVM, unavailable="building the probe image failed: no mirror")
    assert result.status is Status.SKIP and "no mirror" in result.summary


def test_boot_test_spec_keeps_connection_pool_and_accelerator_and_drops_busy_hardware() -> None:
    spec = parse_spec(
        {
            "vm": {"name": "gamer", "connect": "qemu:///session", "memory": "16GiB", "vcpus": 8, "tpm": "on"},
            "disk": {"pool": "fast", "pool_dir": "/srv/vm", "size": "200GiB"},
            "gpu": {"devices": ["0000:01:00.0"]},
            "ivshmem": {"enabled": True},
        },
        label="test",
    )
    small = boot_test_spec(spec, VirtType.KVM)
    assert (small.os, small.vm.name, small.vm.connect, small.vm.virt_type) == (
        OsKind.PROBE, "gamer", "qemu:///session", VirtType.KVM,
    )  # fmt: skip
    assert (small.disk.pool, str(small.disk.pool_dir), small.disk.size) == ("fast", "/srv/vm", 64 * 1024**2)
    assert (small.vm.firmware, small.vm.tpm, small.vm.vcpus) == (Firmware.BIOS, Toggle.OFF, 1)
    assert small.gpu.devices == () and not small.ivshmem.enabled and small.network.type.value == "none"
    assert boot_test_spec(spec, VirtType.QEMU).vm.virt_type is VirtType.QEMU
