"""From a spec to checked answer media: inspect, plan, render, validate, collect, write.

Nothing is written unless every step succeeded: a spec whose answer file would fail (edition
not in the ISO, key for another edition, missing drivers) stops here with a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmforge.credentials import admin_password
from vmforge.errors import SpecError, VmforgeError
from vmforge.media.answer import ANSWER_DIR, BOOTSTRAP_SCRIPT, RenderedAnswer, render_answer
from vmforge.media.answer_iso import (
    DEFAULT_EPOCH,
    AnswerMedia,
    MediaContent,
    inputs_digest,
    write_answer_iso,
    write_answer_media,
)
from vmforge.media.bootstrap import render_bootstrap
from vmforge.media.iso_inspect import IsoInspection, inspect_spec_iso
from vmforge.media.package_media import package_media_files
from vmforge.media.validate import AnswerFileInvalid, Report, validate_bytes
from vmforge.media.virtio_win import winpe_drivers
from vmforge.packages.preflight import preflight_packages
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import DiskBus, Spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

WINPE_DRIVER_DIR = "$WinPEDriver$"
BUSES_NEEDING_DRIVERS = frozenset({DiskBus.VIRTIO.value, DiskBus.SCSI.value})


@dataclass(frozen=True)
class Prepared:
    inspection: IsoInspection
    plan: Plan
    answer: RenderedAnswer
    report: Report


def inspect_for(spec: Spec) -> IsoInspection:
    if spec.windows.iso is None:
        raise SpecError(
            "windows.iso is not set: answer files are checked against the installer ISO",
            hint='set windows.iso = "/path/to/Win11.iso" (or --set windows.iso=...)',
        )
    return inspect_spec_iso(spec.windows.iso, spec.windows.iso_sha256)


def prepare_answer(spec: Spec, password: str, inspection: IsoInspection | None = None) -> Prepared:
    inspection = inspection or inspect_for(spec)
    plan = resolve_plan(spec, media=inspection.media_facts())
    answer = render_answer(spec.windows, plan, inspection, password)
    report = validate_bytes(answer.text.encode("utf-8"), "rendered answer file", inspection)
    if report.errors:
        raise AnswerFileInvalid(
            f"the rendered answer file fails validation: {report.errors[0]}",
            hint="this is a vmforge bug or a template edit gone wrong; see the findings",
            report=report,
        )
    return Prepared(inspection, plan, answer, report)


def media_files(spec: Spec, prepared: Prepared, vm_dir: VmDir | None = None) -> dict[str, MediaContent]:
    """Everything on the answer media: answer file, bootstrap, WinPE drivers, the spec's packages,
    and with WinRM in remote.channels (and ``vm_dir`` to keep its certificate in) the WinRM set-up
    the bootstrap runs: script, PFX and its password.

    The packages pass the same preflight as ``create`` (files present and matching their
    sha256, INF, edition, build) before anything is written.
    """
    from vmforge.guest.winrm_setup import LISTENER_SCRIPT, winrm_media_files  # paramiko/pywinrm: only when needed

    plan = prepared.plan
    remote = {} if vm_dir is None else winrm_media_files(spec, vm_dir, plan.computer_name or spec.vm.name)
    listener = LISTENER_SCRIPT if LISTENER_SCRIPT in remote else None
    files: dict[str, MediaContent] = {
        "autounattend.xml": prepared.answer.text.encode("ascii"),
        f"{ANSWER_DIR}/{BOOTSTRAP_SCRIPT}": render_bootstrap(
            plan, prepared.answer.image.arch or "amd64", listener
        ).encode("ascii"),
    }
    files.update({f"{ANSWER_DIR}/{name}": data for name, data in remote.items()})
    virtio = spec.virtio_win.iso
    if virtio is None:
        if plan.disk.bus in BUSES_NEEDING_DRIVERS:
            raise SpecError(
                f"disk.bus = '{plan.disk.bus}' needs virtio drivers in Windows Setup, but virtio_win.iso is not set",
                hint="download virtio-win.iso and set virtio_win.iso, or use --set disk.bus=sata",
            )
    else:
        assert plan.family is not None
        for driver in winpe_drivers(virtio, plan.family, prepared.answer.image.arch or "amd64"):
            files[f"{WINPE_DRIVER_DIR}/{driver.driver}/{driver.relative}"] = driver.data
    files.update(package_media_files(preflight_packages(spec, prepared.inspection)))
    return files


def build_media(
    spec: Spec,
    *,
    reporter: Reporter,
    output: Path | None = None,
    vm_dir: VmDir | None = None,
    epoch: int = DEFAULT_EPOCH,
) -> tuple[Prepared, AnswerMedia]:
    """Build the answer ISO into ``output`` or the VM's media folder (reused when unchanged)."""
    vm_dir = vm_dir or VmDir(spec.vm.name)
    with reporter.step("Inspecting the installer ISO"):
        inspection = inspect_for(spec)
    password = admin_password(spec, vm_dir)
    with reporter.step("Rendering and validating the answer file"):
        prepared = prepare_answer(spec, password, inspection)
        for warning in prepared.report.warnings:
            reporter.warn(str(warning))
    with reporter.step("Collecting drivers, scripts and packages"):
        files = media_files(spec, prepared, vm_dir)
    with reporter.step("Writing the answer media"):
        if output is None:
            media = write_answer_media(vm_dir.media, files, epoch=epoch)
        else:
            if output.is_dir():
                raise VmforgeError(f"{output} is a directory", hint="pass a file name, e.g. -o answer.iso")
            write_answer_iso(output, files, epoch)
            media = AnswerMedia(output, inputs_digest(files, epoch), tuple(sorted(files)), reused=False)
    return prepared, media
