"""``vmforge reprovision NAME``: report drift (``--check``), or put a broken VM back - revert it
to its known-good snapshot, or re-clone it from its image.

Drift compared here: the domain definition libvirt holds against the one vmforge's builder makes
from the plan today (memory, vCPUs, firmware, boot, CPU, TPM, disks, shared memory, network,
video, passed-through devices), the plan hash recorded in the owner tag, for a clone its
base image (present and unchanged by hash), and - when the VM runs and its agent answers -
the spec's packages and guards (vmforge.images.reapply; guards only on Windows guests).

After a revert or a re-clone the VM is started (unless told not to), and once its agent answers
the spec's packages and guards are applied again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libvirt
from lxml import etree

from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import start
from vmforge.domain.review import review_xml
from vmforge.domain.shapes import Shape
from vmforge.errors import ChecksFailed, UsageError, VmforgeError
from vmforge.guest.session import Guest
from vmforge.images.clone import CloneReport, check_base, clone_vm
from vmforge.images.reapply import guest_drift, reapply
from vmforge.images.snapshot import known_good, revert
from vmforge.images.store import IMAGE_KEY, find_image
from vmforge.images.vmfiles import owned_domain
from vmforge.libvirt_conn import libvirt_errors
from vmforge.plan import Plan
from vmforge.spec import Spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

# What the definition must keep, as XPath expressions on the domain XML.
COMPARED = {
    "memory": "memory/text()",
    "vcpus": "vcpu/text()",
    "machine": "os/type/@machine",
    "firmware loader": "os/loader/text()",
    "secure boot": "os/loader/@secure",
    "kernel": "os/kernel/text()",
    "kernel command line": "os/cmdline/text()",
    "cpu mode": "cpu/@mode",
    "cpu model": "cpu/model/text()",
    "tpm": "devices/tpm/@model",
    "tpm version": "devices/tpm/backend/@version",
    "system disk": "devices/disk[@device='disk']/source/@volume",
    "disk bus": "devices/disk[@device='disk']/target/@bus",
    "shared memory": "devices/shmem/@name",
    "shared memory size": "devices/shmem/size/text()",
    "network": "devices/interface/@type",
    "video": "devices/video/model/@type",
    "host devices": "devices/hostdev/source/address/@bus",
    "agent channel": "devices/channel/target/@name",
}


@dataclass
class DriftReport:
    name: str
    drift: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "drift": self.drift,
            "checked": self.checked,
            "not_checked": self.not_checked,
        }


def definition_drift(actual_xml: str, expected_xml: str) -> list[str]:
    actual = etree.fromstring(actual_xml.encode())
    expected = etree.fromstring(expected_xml.encode())
    found = []
    for label, path in COMPARED.items():
        have, want = _values(actual, path), _values(expected, path)
        if have != want:
            shown = ", ".join(have) or "absent"
            found.append(f"domain {label}: is {shown}, the plan says {', '.join(want) or 'absent'}")
    return found


def _values(root: Any, path: str) -> list[str]:
    result = root.xpath(path)
    return sorted(str(v).strip() for v in result) if isinstance(result, list) else [str(result)]


def check_drift(
    conn: Any,
    name: str,
    plan: Plan,
    vm_dir: VmDir,
    guest: Callable[[], Guest] | None = None,
    *,
    spec: Spec | None = None,
) -> DriftReport:
    dom, tag = owned_domain(conn, name)
    report = DriftReport(name)
    with libvirt_errors(f"reading domain {name}"):
        actual = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        running = bool(dom.isActive())
    report.drift += definition_drift(actual, review_xml(conn, plan, Shape.FINAL))
    report.checked.append("domain definition")
    if tag.plan_hash != plan.digest():
        report.drift.append("plan: the VM was defined from another plan (spec or host changed since)")
    report.checked.append("plan hash")
    state = vm_dir.load()
    image_id = state.extra.get(IMAGE_KEY) if state else None
    if image_id:
        try:
            check_base(find_image(image_id))
        except VmforgeError as exc:
            report.drift.append(f"image: {exc.message}")
        report.checked.append("base image")
    if not running or guest is None or spec is None:
        why = "the VM is not running" if not running else "no guest session"
        report.not_checked.append(f"packages and guards ({why})")
        return report
    found = guest_drift(spec, plan, vm_dir, guest())
    report.drift += found.drift
    report.checked += found.checked
    report.not_checked += found.skipped
    return report


def raise_on_drift(report: DriftReport) -> None:
    if not report.ok:
        raise ChecksFailed(
            f"VM '{report.name}' drifted: {report.drift[0]}"
            + (f" (+{len(report.drift) - 1} more)" if len(report.drift) > 1 else ""),
            hint=f"'vmforge reprovision {report.name}' puts it back (snapshot or image)",
            report=report.to_data(),
        )


def choose_source(vm_dir: VmDir, requested: str | None) -> str:
    state = vm_dir.load()
    has_snapshot = known_good(vm_dir) is not None
    has_image = bool(state and state.extra.get(IMAGE_KEY))
    if requested == "snapshot" and not has_snapshot:
        raise UsageError(
            f"VM '{vm_dir.name}' has no known-good snapshot",
            hint=f"take one: vmforge snapshot {vm_dir.name} LABEL --known-good",
        )
    if requested == "image" and not has_image:
        raise UsageError(f"VM '{vm_dir.name}' was not cloned from an image", hint="use --from snapshot")
    if requested is not None:
        return requested
    if has_snapshot:
        return "snapshot"
    if has_image:
        return "image"
    raise UsageError(
        f"VM '{vm_dir.name}' has neither a known-good snapshot nor an image to come back from",
        hint=f"take a snapshot ('vmforge snapshot {vm_dir.name} good --known-good') while it is healthy",
    )


def reprovision(
    conn: Any,
    name: str,
    plan: Plan,
    vm_dir: VmDir,
    *,
    source: str | None,
    reporter: Reporter,
    guest: Callable[[], Guest] | None,
    ready_timeout: float = 600.0,
    spec: Spec | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Revert VM ``name`` to its known-good snapshot or clone it again from its image; then, with
    ``guest`` (the agent session factory), start it, wait for its agent and re-apply ``spec``'s
    packages and guards.  Without ``guest`` a reverted VM is started again only if it ran before,
    and a re-cloned one is left shut off; nothing is re-applied."""
    dom, _tag = owned_domain(conn, name)
    chosen = choose_source(vm_dir, source)
    with libvirt_errors(f"reading domain {name}"):
        was_running = bool(dom.isActive())
    if chosen == "snapshot":
        label = known_good(vm_dir)
        assert label is not None
        if was_running:
            with reporter.step(f"powering off {name} (it is being reverted)"), libvirt_errors(f"stopping {name}"):
                dom.destroy()
        with reporter.step(f"reverting {name} to its known-good snapshot {label}"):
            revert(conn, name, vm_dir, label)
        result: dict[str, Any] = {"name": name, "from": "snapshot", "snapshot": label, "restarted": False}
        if guest is not None:
            session = guest()
            with reporter.step(f"starting {name} and waiting for its agent"):
                start(dom, vm_dir)
                session.transport.wait_ready(clock() + ready_timeout)
            result["restarted"] = True
            if spec is not None:
                result["reapplied"] = reapply(spec, plan, vm_dir, session, reporter=reporter)
        elif was_running:
            start(dom, vm_dir)
            result["restarted"] = True
        return result
    state = vm_dir.load()
    image = find_image(str(state.extra[IMAGE_KEY]) if state else "")
    with reporter.step(f"removing {name} to clone it again from image {image.id[:16]}"):
        destroy_vm(conn, name, vm_dir)
    report: CloneReport = clone_vm(
        conn, image, plan, vm_dir=vm_dir, guest=guest, reporter=reporter, ready_timeout=ready_timeout,
        clock=clock, spec=spec,
    )  # fmt: skip
    return {
        "name": name,
        "from": "image",
        "image": image.id,
        "restarted": guest is not None,
        "clone": report.to_data(),
        "reapplied": report.reapplied,
    }
