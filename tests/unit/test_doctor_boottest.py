"""The boot test's decisions, with a stand-in QEMU script (the real boot is an integration test).

The stand-in reads -accel and -serial file:PATH like QEMU and behaves like this machine's QEMU:
under KVM the guest prints nothing (nested KVM hangs), under TCG it prints the probe's marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vmforge.doctor.boottest import READY_MARKER, boot, check_boot
from vmforge.doctor.model import Status
from vmforge.spec import VirtType

SCRIPT = """#!/bin/sh
accel=""; serial=""
while [ $# -gt 0 ]; do
    case "$1" in
        -accel) accel=$2; shift ;;
        -serial) serial=${2#file:}; shift ;;
    esac
    shift
done
case "$accel" in
    {behaviour}
esac
"""
NESTED = """kvm) exec sleep 60 ;;
    tcg) printf 'Linux version 6.1\\n%s kernel=6.1.0\\n' "VMFORGE-PHASE probe-init" >"$serial"; exec sleep 60 ;;"""
BROKEN = """*) echo "qemu-system-x86_64: could not load kernel" >&2; exit 1 ;;"""


@dataclass(frozen=True)
class Image:
    kernel: Path
    initrd: Path
    cmdline: str = "console=ttyS0"


def fake_qemu(tmp_path: Path, behaviour: str) -> str:
    script = tmp_path / "qemu-system-x86_64"
    script.write_text(SCRIPT.replace("{behaviour}", behaviour))
    script.chmod(0o755)
    return str(script)


def image(tmp_path: Path) -> Image:
    return Image(tmp_path / "vmlinuz", tmp_path / "initrd.img")


def test_marker_is_the_probe_inits_first_phase() -> None:
    assert READY_MARKER == b"VMFORGE-PHASE probe-init"


def test_hang_under_kvm_is_caught_at_the_deadline_and_the_qemu_is_killed(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, NESTED)
    start = time.monotonic()
    outcome = boot(image(tmp_path), "kvm", 1.0, qemu=qemu)
    assert not outcome.booted and "no sign of init within 1s (the kernel printed nothing)" in outcome.detail
    assert time.monotonic() - start < 10


def test_nested_kvm_fails_and_points_at_tcg(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, NESTED)
    result = check_boot(image(tmp_path), VirtType.KVM, qemu=qemu, kvm_deadline=1.0, tcg_deadline=20.0)
    assert result.status is Status.FAIL and result.summary.startswith("KVM is unusable")
    assert result.fix and result.fix.startswith('set vm.virt_type = "qemu"')
    assert result.evidence[-1].startswith("tcg control: booted after")


def test_tcg_boot_passes(tmp_path: Path) -> None:
    result = check_boot(image(tmp_path), VirtType.QEMU, qemu=fake_qemu(tmp_path, NESTED), tcg_deadline=20.0)
    assert result.status is Status.PASS and "kvm=" not in result.summary
    assert result.evidence[0].endswith("VMFORGE-PHASE probe-init kernel=6.1.0")


def test_qemu_that_exits_is_reported_with_its_message(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, BROKEN)
    result = check_boot(image(tmp_path), VirtType.KVM, qemu=qemu, kvm_deadline=5.0, tcg_deadline=5.0)
    assert result.status is Status.WARN  # neither accelerator boots: not a KVM problem alone
    assert "could not load kernel" in result.evidence[0]
    tcg = check_boot(image(tmp_path), VirtType.QEMU, qemu=qemu, tcg_deadline=5.0)
    assert tcg.status is Status.FAIL and "even under TCG" in tcg.summary


def test_no_image_is_a_skip_with_the_reason(tmp_path: Path) -> None:
    result = check_boot(None, VirtType.KVM, unavailable="this vmforge has no probe image builder")
    assert result.status is Status.SKIP and "no probe image builder" in result.summary
