"""``vmforge clone IMAGE NAME``: a linked clone - a qcow2 overlay on the read-only base image,
its own copies of the image's NVRAM and TPM state, its own identity - booted and checked.

Steps: check the base is unchanged (its sha256, through the checksum cache keyed by path, size,
mtime and inode); provision the domain from the clone's plan with the disk as an overlay on
the base (vmforge.domain.lifecycle.provision, so the owner tag lists the overlay and destroy
removes it); copy NVRAM and TPM state in before the first start; record the image in the
clone's state; Windows: attach the specialize media (the clone's answer file and certificate,
see vmforge.images.specialize and vmforge.images.clone_media); boot; wait for the agent;
specialize (probe: a new identity file; Windows: remove the specialize media); re-apply the
spec's packages and guards (vmforge.images.reapply); re-check the base's hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.domain.lifecycle import provision, start
from vmforge.domain.shapes import Shape
from vmforge.errors import UsageError, VmforgeError
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.session import Guest
from vmforge.images.clone_media import attach_clone_media, detach_clone_media, write_clone_media
from vmforge.images.files import replace_state, state_digest
from vmforge.images.generalize import PROBE_IDENTITY
from vmforge.images.reapply import reapply
from vmforge.images.specialize import probe_identity, read_probe_file, windows_specialization, write_probe_identity
from vmforge.images.store import IMAGE_KEY, Image, nvram_copy, tpm_copy
from vmforge.images.vmfiles import vm_files
from vmforge.libvirt_conn import connect
from vmforge.media.checksum import file_sha256
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import Plan
from vmforge.spec import Firmware, OsKind, Spec
from vmforge.state import VmDir, VmState
from vmforge.storage import ensure_pool, lookup_volume
from vmforge.ui import Reporter

READY_TIMEOUT = 600.0


@dataclass
class CloneReport:
    name: str
    image: str
    ready_seconds: float | None = None
    identity: str | None = None
    base_unchanged: bool = False
    reapplied: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "ready_seconds": self.ready_seconds,
            "identity": self.identity,
            "base_unchanged": self.base_unchanged,
            "reapplied": self.reapplied,
            "notes": self.notes,
        }


def check_base(image: Image, cache_dir: Path | None = None) -> None:
    path = Path(image.key)
    if not path.is_file():
        raise VmforgeError(f"the base disk {path} of image {image.id[:16]} is missing", hint="rebuild the image")
    if file_sha256(path, cache_dir) != image.disk_sha256:
        raise VmforgeError(
            f"the base disk {path} of image {image.id[:16]} was modified since it was captured",
            hint="its clones can no longer be trusted; destroy them, 'vmforge image rm' it and build it again",
        )


def clone_vm(
    conn: Any,
    image: Image,
    plan: Plan,
    *,
    vm_dir: VmDir,
    guest: Callable[[], Guest] | None,
    reporter: Reporter,
    ready_timeout: float = READY_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    cache_dir: Path | None = None,
    spec: Spec | None = None,
) -> CloneReport:
    """Clone ``image`` as ``plan.name``; with ``guest`` (the agent session factory) boot it,
    wait until ready, specialize it and (given ``spec``) re-apply its packages and guards; else
    leave it defined and shut off."""
    report = CloneReport(plan.name, image.id)
    if plan.disk.pool != image.pool:
        raise UsageError(
            f"disk.pool = '{plan.disk.pool}' but image {image.id[:16]} lives in pool '{image.pool}'",
            hint=f"a linked clone's overlay sits beside its base: use --set disk.pool={image.pool}",
        )
    if image.nvram and plan.firmware is Firmware.BIOS:
        raise UsageError(
            f"image {image.id[:16]} carries UEFI NVRAM but the clone's plan has BIOS firmware",
            hint="clone with the image's firmware (vm.firmware = 'uefi' or 'uefi-secure')",
        )
    if lookup_owned_domain(conn, plan.name) is not None:
        raise UsageError(
            f"VM '{plan.name}' already exists", hint=f"pick another NAME, or 'vmforge destroy {plan.name}' first"
        )
    with reporter.step(f"checking base image {image.id[:16]}"):
        check_base(image, cache_dir)
    pool = ensure_pool(conn, plan.disk, system=plan.system_uri)
    base = lookup_volume(pool, image.volume)
    if base is None or str(base.key()) != image.key:
        raise VmforgeError(f"image volume {image.pool}/{image.volume} is missing", hint="rebuild the image")
    with reporter.step(f"defining {plan.name} on {image.label}"):
        dom = provision(conn, plan, Shape.FINAL, vm_dir=vm_dir, disk_base=base)
        files = vm_files(dom)
        if files.nvram is not None:
            replace_state(nvram_copy(image), files.nvram)
        if files.tpm_dir is not None:
            replace_state(tpm_copy(image), files.tpm_dir)
        for saved, live in ((nvram_copy(image), files.nvram), (tpm_copy(image), files.tpm_dir)):
            if live is not None and state_digest(saved) != state_digest(live):
                raise VmforgeError(f"copying {saved} to {live} did not give the same content", hint="run it again")
        state = vm_dir.load() or VmState(name=plan.name)
        state.plan_hash, state.spec_hash = plan.digest(), plan.spec_hash
        state.extra[IMAGE_KEY] = image.id
        vm_dir.save(state)
    if plan.os is OsKind.WINDOWS:
        with reporter.step(f"attaching {plan.name}'s specialize media"):
            admin_user = spec.windows.admin_user if spec is not None else "vmforge"
            computer_name = plan.computer_name or plan.name[:15].upper()
            special = windows_specialization(vm_dir, computer_name=computer_name, admin_user=admin_user)
            attach_clone_media(
                conn, dom, pool, write_clone_media(vm_dir, special, spec.remote if spec is not None else None), vm_dir
            )
    if guest is None:
        report.notes.append("not started (--no-start)")
        if plan.os is OsKind.WINDOWS:
            report.notes.append(
                "the specialize media (it holds the clone's new credentials) stays attached: vmforge "
                "removes it only when it boots the clone itself; 'vmforge destroy' deletes it"
            )
    else:
        session = guest()
        _boot_and_specialize(dom, plan, session, report, reporter, ready_timeout, clock)
        if plan.os is OsKind.WINDOWS:
            with reporter.step(f"removing {plan.name}'s specialize media"):
                detach_clone_media(conn, dom, vm_dir)
        if spec is not None:
            report.reapplied = reapply(spec, plan, vm_dir, session, reporter=reporter)
    check_base(image, cache_dir)
    report.base_unchanged = True
    return report


def _boot_and_specialize(  # noqa: PLR0917
    dom: Any,
    plan: Plan,
    session: Guest,
    report: CloneReport,
    reporter: Reporter,
    ready_timeout: float,
    clock: Callable[[], float],
) -> None:
    started = clock()
    with reporter.step(f"booting {plan.name} and waiting for its agent"):
        start(dom, ivshmem=plan.ivshmem)
        session.transport.wait_ready(clock() + ready_timeout)
    report.ready_seconds = round(clock() - started, 1)
    if plan.os is OsKind.PROBE:
        with reporter.step(f"giving {plan.name} its own identity"):
            identity = probe_identity(plan.name)
            write_probe_identity(session, identity)
            seen = read_probe_file(session, PROBE_IDENTITY)
            if seen != identity:
                raise VmforgeError(
                    f"the identity file of clone '{plan.name}' reads back wrong", hint="look at the guest's disk"
                )
            report.identity = seen.split("id=", 1)[1].strip()


def agent_session(uri: str, name: str) -> Callable[[], Guest]:
    """A factory for the agent session of VM ``name`` (opened when first used)."""
    return lambda: Guest(AgentTransport(LibvirtAgentChannel(lambda: connect(uri), name), command_timeout=30.0))
