"""``--boot-test``: does a guest really run with the spec's accelerator?

/dev/kvm can exist and domain capabilities can offer KVM while guests hang at boot (nested
virtualisation gone wrong).  Only booting something shows it, and it is booted the way vmforge
boots everything: through libvirtd, from vmforge's own domain XML.  The probe machinery does the
work (:mod:`vmforge.probe.run`): the probe image (Debian kernel + busybox initramfs) is staged
where QEMU may read it, a small probe-OS spec on the spec's connection, pool and accelerator
goes through the ONE probe transform (direct kernel boot, BIOS; suffix ``-boot-test``),
:func:`~vmforge.probe.run.probe_domain` provisions it and removes it again - always, also on a
timeout, an error or Ctrl-C - and the console stream is followed until the probe's init prints
its first ``VMFORGE-PHASE probe-init`` marker or the deadline passes.  When KVM fails, the same
probe is booted under TCG as a control, so the report can say "use virt_type = 'qemu'" with
evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.domain.review import plan_on_host
from vmforge.errors import VmforgeError
from vmforge.guest.console import follow_console
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.probe.image import ensure_probe_image
from vmforge.probe.run import probe_domain, stage_image
from vmforge.probe.transform import probe_plan
from vmforge.spec import Spec, VirtType, parse_spec

READY_PHASE = "probe-init"  # printed by the probe's init once userspace runs
KVM_DEADLINE = 30.0  # a working KVM boots the probe in 1-2 s
TCG_DEADLINE = 180.0  # TCG on a loaded 2-core machine: 10-60 s
SUFFIX = "-boot-test"


@dataclass(frozen=True)
class BootOutcome:
    accel: str
    booted: bool
    seconds: float
    detail: str  # why it did not boot, or the marker line
    serial_tail: str = ""
    removed: bool = True  # the boot-test domain is gone again


# One boot attempt: (virt type, deadline in seconds) -> what happened.
Booter = Callable[[VirtType, float], BootOutcome]


def accel_name(virt_type: VirtType) -> str:
    return "kvm" if virt_type is VirtType.KVM else "tcg"


def boot_test_spec(spec: Spec, virt_type: VirtType) -> Spec:
    """The smallest probe VM on the spec's connection, storage pool and ``virt_type``: the boot
    test asks whether the accelerator runs a guest, so nothing of the spec's hardware that could
    be busy or exclusive (GPU hostdevs, ivshmem, TPM, network, the Windows media) is attached."""
    disk: dict[str, Any] = {"size": "64MiB", "pool": spec.disk.pool}
    if spec.disk.pool_dir is not None:
        disk["pool_dir"] = str(spec.disk.pool_dir)
    data = {
        "os": "probe",
        "vm": {
            "name": spec.vm.name,
            "connect": spec.vm.connect,
            "virt_type": virt_type.value,
            "memory": "512MiB",
            "vcpus": 1,
            "firmware": "bios",
            "tpm": "off",
        },
        "disk": disk,
        "network": {"type": "none"},
        "display": {"vnc": False},
    }
    return parse_spec(data, label="doctor boot test")


def libvirt_booter(spec: Spec, image: Any, *, clock: Callable[[], float] = time.monotonic) -> Booter:
    """Boot attempts through libvirtd with :mod:`vmforge.probe.run`'s machinery."""

    def attempt(virt_type: VirtType, deadline: float) -> BootOutcome:
        accel = accel_name(virt_type)
        conn = connect(spec.vm.connect)
        try:
            plan = plan_on_host(conn, boot_test_spec(spec, virt_type))
            pplan = probe_plan(plan, stage_image(image, plan), suffix=SUFFIX)
            with probe_domain(conn, pplan) as (dom, _vm_dir):
                with libvirt_errors(f"starting domain {pplan.name}"):
                    dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
                with follow_console(conn, dom) as console:
                    start = clock()
                    with libvirt_errors(f"resuming domain {pplan.name}"):
                        dom.resume()
                    event = console.wait_for(READY_PHASE, start + deadline, clock=clock)
                    elapsed = clock() - start
                    tail = _tail(bytes(console.raw))
                    if event is not None:
                        line = f"VMFORGE-PHASE {event.phase} " + " ".join(
                            f"{k}={v}" for k, v in dict(event.fields).items()
                        )
                        return BootOutcome(accel, True, elapsed, line.strip(), tail)
                    if not dom.isActive():
                        why = f"the domain stopped after {elapsed:.0f}s before the guest's init ran"
                        return BootOutcome(accel, False, elapsed, why, tail)
                    printed = "the kernel printed nothing" if not tail else "the boot stopped"
                    return BootOutcome(
                        accel, False, elapsed, f"no sign of init within {deadline:.0f}s ({printed})", tail
                    )
        except VmforgeError as exc:
            return BootOutcome(accel, False, 0.0, f"could not boot the probe domain: {exc.message}")
        finally:
            conn.close()

    return attempt


def _tail(data: bytes, lines: int = 5) -> str:
    return "\n".join(data.decode(errors="replace").strip().splitlines()[-lines:])


def check_boot(
    booter: Booter | None,
    virt_type: VirtType,
    *,
    unavailable: str = "",
    kvm_deadline: float = KVM_DEADLINE,
    tcg_deadline: float = TCG_DEADLINE,
) -> CheckResult:
    """The ``kvm.boot`` check: boot with the spec's accelerator; on a KVM failure, a TCG control."""
    if booter is None:
        return skipped("kvm.boot", f"no probe image to boot: {unavailable}")
    accel = accel_name(virt_type)
    first = booter(virt_type, kvm_deadline if accel == "kvm" else tcg_deadline)
    evidence = [f"{accel}: {'booted' if first.booted else 'failed'} after {first.seconds:.1f}s: {first.detail}"]
    if first.booted:
        return passed("kvm.boot", f"the probe guest boots under {accel} in {first.seconds:.1f}s", *evidence)
    if first.serial_tail:
        evidence.append(f"serial tail: {first.serial_tail}")
    if accel == "tcg":
        return failed(
            "kvm.boot",
            f"the probe guest does not boot even under TCG: {first.detail}",
            "check the QEMU installation (virsh domcapabilities --virttype qemu) and the probe image",
            *evidence,
        )
    control = booter(VirtType.QEMU, tcg_deadline)
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
        "run 'vmforge probe --builtin demo' and read its output",
        *evidence,
    )


def probe_booter(spec: Spec) -> tuple[Booter | None, str]:
    """Boot attempts for ``spec`` with the probe image (built once and cached), or None and why not."""
    try:
        image = ensure_probe_image()
    except VmforgeError as exc:
        return None, f"building the probe image failed: {exc.message}"
    return libvirt_booter(spec, image), ""
