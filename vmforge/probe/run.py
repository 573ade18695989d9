"""Boot the probe on a spec's hardware, collect its report over the guest agent, remove it.

Steps: stage the probe kernel and initramfs where QEMU may read them; transform the plan
(:mod:`vmforge.probe.transform`); provision and start it with vmforge's own domain builder and
lifecycle (:func:`vmforge.domain.lifecycle.provision`); follow the console's phase markers; wait
for the agent; run ``vmforge-probe-report`` in the guest; when the plan has ivshmem, run the
channel check (handshake, echo, one checksummed frame) against the C peer started in the guest
on the device's BAR2; then destroy the probe domain with the domains module's destroy logic
(owned objects only) - always, also on errors and Ctrl-C, unless ``keep``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.review import plan_on_host
from vmforge.domain.shapes import Shape
from vmforge.errors import VmforgeError
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.console import ConsoleFollower, follow_console
from vmforge.hashing import sha256_file as _sha256
from vmforge.ivshmem.backing import open_shared_memory
from vmforge.ivshmem.echo import check_channel
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.logs import get_logger
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import DirectBoot, Plan, is_local_uri
from vmforge.probe.image import PEER_PATH, ProbeImage
from vmforge.probe.report import IVSHMEM_ID, GuestFacts, ProbeReport, parse_report
from vmforge.probe.transform import probe_plan
from vmforge.spec import Spec
from vmforge.state import VmDir
from vmforge.storage import check_qemu_can_reach
from vmforge.ui import Reporter

log = get_logger("probe.run")

SYSTEM_STAGE_DIR = Path("/var/lib/vmforge/probe")
REPORT_SCRIPT = "/usr/bin/vmforge-probe-report"


@dataclass(frozen=True)
class Timeouts:
    agent: float = 240.0  # boot to agent (TCG on a busy 2-core host: ~20-60 s)
    command: float = 60.0
    ivshmem_peer: float = 60.0


def boot_kernel(image: ProbeImage, plan: Plan) -> Path:
    """The kernel file to boot for ``plan``: the PVH vmlinux, except with a TPM.  With QEMU 7.2's
    PVH entry and a ``tpm-crb`` device Linux 6.1 reads a broken ACPI table list ("ACPI BIOS Error
    (bug): Invalid table length 0x0 in RSDT/XSDT"): devices behind PCIe root ports stay in D3cold
    (no agent port, no disk) and power-off only halts.  ``pcie_ports=compat`` brings the devices
    back but not the power-off, so TPM plans boot the bzImage, whose ACPI tables are intact."""
    return image.bzimage if plan.tpm else image.kernel


def stage_image(image: ProbeImage, plan: Plan, stage_root: Path = SYSTEM_STAGE_DIR) -> DirectBoot:
    """Kernel and initramfs where the hypervisor can read them: on qemu:///system QEMU runs as
    libvirt-qemu and cannot traverse a private cache (/root/.cache), so they are copied to
    ``stage_root/<key>/`` (world-readable); qemu:///session reads the user's cache directly."""
    if not is_local_uri(plan.connect):
        raise VmforgeError(
            f"vm.connect = '{plan.connect}': the probe boots a kernel file, which must be on the libvirt host",
            hint="run vmforge probe on the VM's host (qemu:///system)",
        )
    kernel = boot_kernel(image, plan)
    if not plan.system_uri:
        return DirectBoot(kernel, image.initrd, image.cmdline)
    folder = stage_root / image.key
    folder.mkdir(parents=True, exist_ok=True)
    for path in (stage_root, folder):  # vmforge's own folders; the ones above are checked, not changed
        path.chmod(0o755)
    check_qemu_can_reach(folder)
    for source in (kernel, image.initrd):
        target = folder / source.name
        if not target.is_file() or _sha256(target) != image.manifest["files"][source.name]:
            partial = folder / f".{source.name}.partial"
            shutil.copyfile(source, partial)
            partial.chmod(0o644)
            partial.replace(target)
    return DirectBoot(folder / kernel.name, folder / image.initrd.name, image.cmdline)


@contextlib.contextmanager
def probe_domain(conn: Any, plan: Plan, *, keep: bool = False) -> Iterator[tuple[Any, VmDir]]:
    """The probe's domain, defined and provisioned (not started); destroyed on the way out
    (errors and KeyboardInterrupt included) unless ``keep``.  A leftover probe domain of the
    same name (an earlier ``--keep``) is destroyed first so every probe boots fresh."""
    vm_dir = VmDir(plan.name, root=plan.vm_dir.parent.parent)
    if lookup_owned_domain(conn, plan.name) is not None:
        destroy_vm(conn, plan.name, vm_dir)
    try:
        dom = provision(conn, plan, Shape.POST_INSTALL, vm_dir=vm_dir)
        yield dom, vm_dir
    finally:
        if not keep:
            report = destroy_vm(conn, plan.name, vm_dir)
            log.info("probe removed: %s", ", ".join(report.removed))


def run_probe(
    conn: Any,
    plan: Plan,
    image: ProbeImage,
    *,
    reporter: Reporter,
    answer_iso: Path | None = None,
    keep: bool = False,
    timeouts: Timeouts = Timeouts(),
    stage_root: Path = SYSTEM_STAGE_DIR,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> ProbeReport:
    """Boot ``plan``'s hardware with the probe guest and return what it saw."""
    with reporter.step("Staging the probe kernel and initramfs"):
        boot = stage_image(image, plan, stage_root)
    pplan = probe_plan(plan, boot, answer_iso)
    reporter.info(f"probe domain {pplan.name}: {'kept afterwards (--keep)' if keep else 'removed afterwards'}")
    with probe_domain(conn, pplan, keep=keep) as (dom, vm_dir):
        # Started paused so the console is followed from the first byte the guest writes (a
        # doorbell device's ivshmem server first).
        start(dom, vm_dir, pplan.ivshmem, paused=True)
        with follow_console(conn, dom) as console:
            report = _boot_and_report(
                conn, dom, console, plan, pplan, reporter=reporter, timeouts=timeouts, clock=clock, rng=rng
            )
    report.removed = not keep
    return report


def probe_spec(
    spec: Spec,
    image: ProbeImage,
    *,
    reporter: Reporter,
    answer_iso: Path | None = None,
    keep: bool = False,
) -> ProbeReport:
    """:func:`run_probe` for ``spec`` on its own libvirt host (``vm.connect``): the plan is
    resolved with that host's facts; the connection is closed afterwards."""
    conn = connect(spec.vm.connect)
    try:
        return run_probe(conn, plan_on_host(conn, spec), image, reporter=reporter, answer_iso=answer_iso, keep=keep)
    finally:
        conn.close()


def _boot_and_report(
    conn: Any,
    dom: Any,
    console: ConsoleFollower,
    plan: Plan,
    pplan: Plan,
    *,
    reporter: Reporter,
    timeouts: Timeouts,
    clock: Callable[[], float],
    rng: random.Random | None,
) -> ProbeReport:
    started = clock()
    with reporter.step("Booting the probe (direct kernel boot)"):
        with libvirt_errors(f"resuming domain {pplan.name}"):
            dom.resume()
        transport = AgentTransport(
            LibvirtAgentChannel(lambda: connect(plan.connect), pplan.name),
            command_timeout=min(20.0, timeouts.command),
        )
        transport.wait_ready(clock() + timeouts.agent)
    boot_to_agent = clock() - started
    console.wait_for("probe-ready", clock() + timeouts.command)
    with reporter.step("Reading the guest's hardware report"):
        facts = _guest_facts(transport, timeouts)
    report = ProbeReport(pplan.name, plan.name, boot_to_agent, _phases(console), facts)
    report.problems += _compare(pplan, facts)
    if pplan.ivshmem is not None:
        with reporter.step("ivshmem round trip (host <-> C peer on the guest's BAR2)"):
            report.ivshmem = _ivshmem_check(transport, pplan, facts, timeouts, rng, report.problems)
    return report


def _phases(console: ConsoleFollower) -> list[dict[str, Any]]:
    # Event timestamps are wall-clock (the reader's clock); relative times are enough here.
    events = list(console.reader.events)
    first = events[0].timestamp if events else 0.0
    return [{"phase": e.phase, "fields": dict(e.fields), "t": round(e.timestamp - first, 2)} for e in events]


def _guest_facts(transport: AgentTransport, timeouts: Timeouts) -> GuestFacts:
    result = transport.run([REPORT_SCRIPT], timeout=timeouts.command)
    if result.rc != 0:
        raise VmforgeError(
            f"the probe's report script exited {result.rc}: {result.stderr.decode('utf-8', 'replace')[:200]}",
            hint="rebuild the probe image (delete the probe cache folder)",
        )
    return parse_report(result.stdout.decode("utf-8", "replace"))


def _compare(plan: Plan, facts: GuestFacts) -> list[str]:
    """What the guest saw that differs from what the plan asked for."""
    problems = []
    if facts.cpus != plan.vcpus:
        problems.append(f"the guest sees {facts.cpus} CPUs, the plan gives {plan.vcpus}")
    # MemTotal is RAM minus what the kernel reserves: within 15% (and below) of the plan.
    planned_kib = plan.memory // 1024
    if not 0.85 * planned_kib <= facts.memory_kib <= planned_kib:
        problems.append(f"the guest sees {facts.memory_kib} KiB of memory, the plan gives {planned_kib} KiB")
    if plan.ivshmem is not None and facts.device(IVSHMEM_ID) is None:
        problems.append("the plan has ivshmem but the guest sees no 1af4:1110 device")
    if plan.media is not None:
        wanted = sum(1 for p in (plan.media.answer_iso, plan.media.virtio_win_iso) if p is not None)
        if len(facts.cds) != wanted:
            problems.append(f"{len(facts.cds)} CDs mounted in the guest, the plan attaches {wanted}")
    if not facts.disks:
        problems.append(f"the guest sees no disk (disk.bus = '{plan.disk.bus}')")
    return problems


def _ivshmem_check(  # noqa: PLR0917 - one private call site
    transport: AgentTransport,
    plan: Plan,
    facts: GuestFacts,
    timeouts: Timeouts,
    rng: random.Random | None,
    problems: list[str],
) -> dict[str, Any] | None:
    ivshmem = plan.ivshmem
    device = facts.device(IVSHMEM_ID)
    if ivshmem is None or device is None:
        return None
    bar = f"/sys/bus/pci/devices/{device.address}/resource2"
    start_peer = (
        f"echo 1 > /sys/bus/pci/devices/{device.address}/enable 2>/dev/null; "
        f"{PEER_PATH} {bar} {timeouts.ivshmem_peer:g} >/tmp/ivshmem-peer.log 2>&1 &"
    )
    with open_shared_memory(ivshmem.path) as shm:
        started = transport.run(["/bin/sh", "-c", start_peer], timeout=timeouts.command)
        if started.rc != 0:
            problems.append(f"starting the ivshmem peer in the guest failed (rc {started.rc})")
            return None
        check = check_channel(
            shm,
            plan.display_width,
            plan.display_height,
            peer_timeout=timeouts.ivshmem_peer,
            echo_count=32,
            bye=True,
            rng=rng or random.Random(),  # noqa: S311 - test payloads, not secrets
        )
    data = check.to_data()
    data["device"] = device.address
    data["bar"] = bar
    size = transport.run(["stat", "-c", "%s", bar], timeout=timeouts.command)
    data["bar_size"] = int(size.stdout) if size.rc == 0 and size.stdout.strip().isdigit() else None
    if data["bar_size"] != ivshmem.size:
        problems.append(f"the guest's ivshmem BAR2 is {data['bar_size']} bytes, the plan gives {ivshmem.size}")
    if not check.ok:
        problems.append(f"ivshmem round trip failed: {data}")
    return data
