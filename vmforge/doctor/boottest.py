"""``--boot-test``: does a guest really run with the spec's accelerator?

/dev/kvm can exist and domain capabilities can offer KVM while guests hang at boot (nested
virtualisation gone wrong).  Only booting something shows it: the probe image (Debian kernel +
busybox initramfs, :mod:`vmforge.probe.image`) is started with plain ``qemu-system-x86_64
-accel kvm -kernel -initrd`` (no domain of its own) and must print its first VMFORGE-PHASE
marker on the serial port before a short deadline.  When KVM fails, the same image is booted
under TCG as a control, so the report can say "use virt_type = 'qemu'" with evidence.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.errors import VmforgeError
from vmforge.spec import VirtType

QEMU = "qemu-system-x86_64"
READY_MARKER = b"VMFORGE-PHASE probe-init"  # printed by the probe's init once userspace runs
KVM_DEADLINE = 30.0  # a working KVM boots the probe in 1-2 s
TCG_DEADLINE = 120.0  # TCG on a loaded 2-core machine: 3-15 s
POLL = 0.1


class BootImage(Protocol):
    @property
    def kernel(self) -> Path: ...
    @property
    def initrd(self) -> Path: ...
    @property
    def cmdline(self) -> str: ...


@dataclass(frozen=True)
class BootOutcome:
    accel: str
    booted: bool
    seconds: float
    detail: str  # why it did not boot, or the marker line
    serial_tail: str


def qemu_argv(qemu: str, image: BootImage, accel: str, serial: Path) -> list[str]:
    return [
        qemu,
        "-accel", accel,
        "-M", "q35",
        "-cpu", "max",  # under KVM: every host feature; under TCG: every emulated one
        "-smp", "1",
        "-m", "256",
        "-nodefaults",
        "-display", "none",
        "-no-reboot",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", image.cmdline,
        "-serial", f"file:{serial}",
    ]  # fmt: skip


def boot(
    image: BootImage,
    accel: str,
    deadline: float,
    *,
    qemu: str = QEMU,
    clock: Callable[[], float] = time.monotonic,
) -> BootOutcome:
    """Boot ``image`` until the ready marker shows, QEMU exits, or ``deadline`` seconds pass."""
    binary = shutil.which(qemu)
    if binary is None:
        raise VmforgeError(f"{qemu} is not installed", hint="apt-get install qemu-system-x86 (scripts/setup-host)")
    with tempfile.TemporaryDirectory(prefix="vmforge-boot-test-") as tmp:
        serial = Path(tmp) / "serial.log"
        serial.write_bytes(b"")
        start = clock()
        proc = subprocess.Popen(
            qemu_argv(binary, image, accel, serial),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            while True:
                data = serial.read_bytes()
                elapsed = clock() - start
                if READY_MARKER in data:
                    line = data[data.index(READY_MARKER) :].split(b"\n", 1)[0].decode(errors="replace").strip()
                    return BootOutcome(accel, True, elapsed, line, _tail(data))
                code = proc.poll()
                if code is not None:
                    stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                    last = stderr.splitlines()[-1] if stderr else "no message"
                    why = f"QEMU exited with {code} before the guest's init ran: {last}"
                    return BootOutcome(accel, False, elapsed, why, _tail(data))
                if elapsed > deadline:
                    printed = "the kernel printed nothing" if not data.strip() else "the boot stopped"
                    return BootOutcome(
                        accel, False, elapsed, f"no sign of init within {deadline:.0f}s ({printed})", _tail(data)
                    )
                time.sleep(POLL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()


def _tail(data: bytes, lines: int = 5) -> str:
    return "\n".join(data.decode(errors="replace").strip().splitlines()[-lines:])


def check_boot(
    image: BootImage | None,
    virt_type: VirtType,
    *,
    unavailable: str = "",
    qemu: str = QEMU,
    kvm_deadline: float = KVM_DEADLINE,
    tcg_deadline: float = TCG_DEADLINE,
) -> CheckResult:
    """The ``kvm.boot`` check: boot with the spec's accelerator; on a KVM failure, a TCG control."""
    if image is None:
        return skipped("kvm.boot", f"no probe image to boot: {unavailable}")
    accel = "kvm" if virt_type is VirtType.KVM else "tcg"
    first = boot(image, accel, kvm_deadline if accel == "kvm" else tcg_deadline, qemu=qemu)
    evidence = [f"{accel}: {'booted' if first.booted else 'failed'} after {first.seconds:.1f}s: {first.detail}"]
    if first.booted:
        return passed("kvm.boot", f"the probe guest boots under {accel} in {first.seconds:.1f}s", *evidence)
    if first.serial_tail:
        evidence.append(f"serial tail: {first.serial_tail}")
    if accel == "tcg":
        return failed(
            "kvm.boot",
            f"the probe guest does not boot even under TCG: {first.detail}",
            "check the QEMU installation (qemu-system-x86_64 -accel tcg) and the probe image",
            *evidence,
        )
    control = boot(image, "tcg", tcg_deadline, qemu=qemu)
    evidence.append(
        f"tcg control: {'booted' if control.booted else 'failed'} after {control.seconds:.1f}s: {control.detail}"
    )
    if control.booted:
        return failed(
            "kvm.boot",
            f"KVM is unusable: the probe guest hangs under KVM ({first.detail}) but boots under TCG in "
            f"{control.seconds:.1f}s; this is typical of nested or broken KVM",
            'set vm.virt_type = "qemu" (TCG emulation, much slower) on this host, or fix nested virtualisation on '
            "its host (kvm_intel nested=1 / kvm_amd nested=1, and expose VT-x/AMD-V to this VM)",
            *evidence,
        )
    return warned(
        "kvm.boot",
        "the probe guest boots neither under KVM nor under TCG: the probe or QEMU is broken, not only KVM",
        "run 'qemu-system-x86_64 -accel tcg -kernel ... -initrd ...' by hand and read its output",
        *evidence,
    )


def probe_image() -> tuple[BootImage | None, str]:
    """The probe image (built once and cached), or None and why not."""
    try:
        builder = importlib.import_module("vmforge.probe.image")
    except ImportError:
        return None, "this vmforge has no probe image builder (vmforge.probe.image)"
    try:
        image: BootImage = builder.ensure_probe_image()
    except VmforgeError as exc:
        return None, f"building the probe image failed: {exc.message}"
    return image, ""
