"""Run every doctor check for one spec, in a fixed order, against one host tree.

Which checks apply follows the resolved plan: whatever the spec does not need is reported as
``skip`` with the reason, so the report always lists every check.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
from lxml import etree

from vmforge.doctor import checks_gpu as gpu
from vmforge.doctor import checks_ivshmem as ivshmem
from vmforge.doctor import checks_kvm as kvm
from vmforge.doctor import checks_libvirt as lv
from vmforge.doctor import checks_media as media
from vmforge.doctor.boottest import Booter, check_boot, probe_booter
from vmforge.doctor.checks_storage import check_storage
from vmforge.doctor.hostfs import HostFs, Identity
from vmforge.doctor.model import CheckResult, Report, failed, passed, skipped, warned
from vmforge.errors import SpecError
from vmforge.host.domcaps import DESCRIPTOR_DIRS, DomainCaps
from vmforge.host.pci import PciHost
from vmforge.libvirt_conn import connect
from vmforge.plan import Plan, is_local_uri, ivshmem_auto_size, resolve_plan
from vmforge.spec import OsKind, Spec, WindowsFamily
from vmforge.ui import Reporter

REMOTE = "the libvirt host is remote (vm.connect): its /sys, /dev and /etc are not visible from here"
NO_LIBVIRT = "libvirt is not reachable (see libvirt.reachable)"
NO_PLAN = "the spec does not resolve (see spec.plan)"
BooterSource = Callable[[Spec], tuple[Booter | None, str]]


def resolve_for_doctor(spec: Spec) -> tuple[CheckResult, Plan | None]:
    """The plan, assuming the most demanding Windows (11: UEFI secure boot + TPM) when the
    family cannot be known yet."""
    try:
        plan = resolve_plan(spec)
    except SpecError as exc:
        if spec.os is OsKind.WINDOWS and spec.windows.family is WindowsFamily.AUTO:
            assumed = spec.model_copy(update={"windows": spec.windows.model_copy(update={"family": WindowsFamily.W11})})
            try:
                plan = resolve_plan(assumed)
            except SpecError as again:
                return failed("spec.plan", again.message, again.hint or "fix the spec"), None
            return (
                warned(
                    "spec.plan",
                    "the Windows family is not known (windows.family = 'auto'; the doctor does not inspect "
                    "the ISO): checking for the most demanding one, Windows 11 (UEFI secure boot and TPM)",
                    "set windows.family (e.g. --set windows.family=10) to check for exactly that Windows",
                    exc.message,
                ),
                plan,
            )
        return failed("spec.plan", exc.message, exc.hint or "fix the spec"), None
    return passed(
        "spec.plan",
        f"the spec resolves: firmware {plan.firmware.value}, TPM {'on' if plan.tpm else 'off'}, "
        f"virt_type {plan.virt_type.value}",
    ), plan


def qemu_identity(fs: HostFs, system_uri: bool) -> Identity | None:
    """Who QEMU runs as: qemu.conf's user for qemu:///system, the calling user for session."""
    if system_uri:
        return fs.identity(fs.qemu_user())
    name = getpass.getuser()
    return fs.identity(name) or Identity(name, os.getuid(), frozenset({os.getgid(), *os.getgroups()}))


def pool_facts(conn: Any, name: str) -> tuple[Path | None, int | None]:
    """(target folder, available bytes) of an existing libvirt pool; (None, None) when absent."""
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:  # no such pool (yet): vmforge creates it
        return None, None
    target = etree.fromstring(str(pool.XMLDesc(0)).encode()).findtext("target/path")
    available = int(pool.info()[3]) if pool.isActive() else None
    return (Path(target) if target else None), available


def run_doctor(
    spec: Spec,
    *,
    root: Path = Path("/"),
    connector: Callable[[str], Any] = connect,
    boot_test: bool = False,
    booter_source: BooterSource = probe_booter,
    reporter: Reporter | None = None,
) -> Report:
    """Every check for ``spec`` against the host below ``root`` (``/`` on a real host)."""
    fs = HostFs(root)
    plan_result, plan = resolve_for_doctor(spec)
    results = [plan_result]
    local = is_local_uri(spec.vm.connect)
    results += libvirt_checks(fs, spec, plan, connector, local)
    results += gpu_checks(fs, spec, local, _is_system(spec.vm.connect))
    results += ivshmem_checks(fs, spec, plan, local)
    results += media_checks(spec, reporter)
    if not boot_test:
        results.append(skipped("kvm.boot", "not asked for (run with --boot-test)"))
    elif not local:
        results.append(skipped("kvm.boot", REMOTE))
    else:
        reporter = reporter or Reporter(quiet=True)
        with reporter.step(f"Boot test: booting the probe guest ({spec.vm.virt_type.value})"):
            booter, why = booter_source(spec)
            results.append(check_boot(booter, spec.vm.virt_type, unavailable=why))
    return Report.of(results)


def _is_system(uri: str) -> bool:
    return uri.split("?", 1)[0].endswith("/system")


def libvirt_checks(
    fs: HostFs, spec: Spec, plan: Plan | None, connector: Callable[[str], Any], local: bool
) -> list[CheckResult]:
    """The daemon, what it offers (firmware, TPM, CPU modes), /dev/kvm and the storage pool."""
    virt_type = spec.vm.virt_type
    system_uri = _is_system(spec.vm.connect)
    reachable, conn = lv.check_libvirt_reachable(spec.vm.connect, connector)
    results = [reachable]
    caps: DomainCaps | None = None
    try:
        if conn is None:
            results += [skipped(i, NO_LIBVIRT) for i in ("libvirt.versions", "libvirt.domcaps")]
        else:
            results.append(lv.check_versions(conn))
            domcaps_result, caps = lv.check_domain_caps(conn, virt_type)
            results.append(domcaps_result)
        if plan is None:
            ids = ("libvirt.cpu-mode", "firmware.uefi", "firmware.vars-template", "tpm.swtpm")
            results += [skipped(i, NO_PLAN) for i in ids]
        else:
            results.append(lv.check_cpu_mode(caps, plan.cpu_mode, virt_type))
            dirs = tuple(fs.path(d) for d in DESCRIPTOR_DIRS) if local else None
            results += lv.check_firmware(caps, plan.firmware, dirs)
            results.append(lv.check_swtpm(caps, plan.tpm, fs.path("/usr/bin/swtpm") if local else None))
        qemu = qemu_identity(fs, system_uri) if local else None
        if local:
            results.append(kvm.check_kvm_device(fs, virt_type))
            results.append(kvm.check_kvm_access(fs, qemu, virt_type))
        else:
            results += [skipped("kvm.device", REMOTE), skipped("kvm.access", REMOTE)]
        if plan is None:
            results.append(skipped("storage.pool", NO_PLAN))
        else:
            target, available = pool_facts(conn, plan.disk.pool) if conn is not None else (None, None)
            target = target or plan.disk.pool_dir
            results.append(
                check_storage(
                    fs,
                    target if local else None,
                    plan.disk.size,
                    qemu,
                    available=available,
                    creator_is_qemu=not system_uri,
                    dynamic_ownership=fs.qemu_conf_value("dynamic_ownership") != "0",
                )
            )
    finally:
        if conn is not None:
            conn.close()
    return results


GPU_IDS = (
    "iommu.enabled",
    "gpu.group",
    "gpu.driver",
    "gpu.single-gpu",
    "gpu.rom",
    "gpu.reset",
    "vfio.modules",
    "vfio.memlock",
    "memory.hugepages",
)


def gpu_checks(fs: HostFs, spec: Spec, local: bool, system_uri: bool) -> list[CheckResult]:
    if not local:
        return [skipped(i, REMOTE) for i in GPU_IDS]
    pci = PciHost(fs.root)
    wanted = bool(spec.gpu.devices)
    results = [gpu.check_iommu(fs, pci, wanted)]
    group_result, devices = gpu.check_gpu_group(pci, spec.gpu.devices, spec.gpu.allow_shared_group)
    results.append(group_result)
    if wanted and not devices:
        reason = "no device to look at (see gpu.group)"
        results += [skipped(i, reason) for i in ("gpu.driver", "gpu.single-gpu", "gpu.rom", "gpu.reset")]
    else:
        results += [
            gpu.check_gpu_driver(devices),
            gpu.check_single_gpu(fs, pci, devices),
            gpu.check_gpu_rom(devices, spec.gpu.rom),
            gpu.check_gpu_reset(fs, devices),
        ]
    results.append(gpu.check_vfio_modules(fs, wanted))
    results.append(gpu.check_memlock(fs, spec.vm.memory, wanted, system_uri))
    results.append(gpu.check_hugepages(fs, spec.vm.memory if spec.vm.hugepages else None))
    return results


def ivshmem_checks(fs: HostFs, spec: Spec, plan: Plan | None, local: bool) -> list[CheckResult]:
    size: int | None = None
    name: str | None = None
    if spec.ivshmem.enabled:
        name = plan.ivshmem.name if plan is not None and plan.ivshmem is not None else None
        size = spec.ivshmem.size if isinstance(spec.ivshmem.size, int) else None
        if size is None:
            size = ivshmem_auto_size(spec.display.width, spec.display.height)
        if name is None:
            name = f"vmforge-{spec.vm.name}" if spec.ivshmem.name == "auto" else spec.ivshmem.name
    results = [ivshmem.check_ivshmem_size(size, spec.display.width, spec.display.height)]
    if not local:
        return results + [
            skipped(i, REMOTE) for i in ("ivshmem.shm-space", "ivshmem.shm-file", "ivshmem.kvmfr", "ivshmem.kvmfr-acl")
        ]
    # The spec's ivshmem always uses /dev/shm; kvmfr is checked only for a stray regular file.
    return [
        *results,
        ivshmem.check_shm_space(fs, size, name),
        ivshmem.check_shm_file(fs, name),
        ivshmem.check_kvmfr(fs, used=False),
        ivshmem.check_device_acl(fs, ivshmem.KVMFR_DEVICE, used=False),
    ]


def media_checks(spec: Spec, reporter: Reporter | None) -> list[CheckResult]:
    ids = ("media.windows-iso", "media.windows-iso-inspect", "media.windows-iso-sha256", "media.virtio-win",
           "packages.verify")  # fmt: skip
    if spec.os is not OsKind.WINDOWS:
        return [skipped(i, "the spec builds the probe guest, not Windows") for i in ids]
    results = [media.check_iso("media.windows-iso", "windows.iso", spec.windows.iso, required=True)]
    inspected, inspection = media.check_iso_inspectable(spec.windows.iso if results[0].status.value == "pass" else None)
    results.append(inspected)
    if spec.windows.iso_sha256 is not None and reporter is not None:
        with reporter.step(f"Hashing {spec.windows.iso}"):
            results.append(media.check_iso_sha256(spec.windows.iso, spec.windows.iso_sha256))
    else:
        results.append(media.check_iso_sha256(spec.windows.iso, spec.windows.iso_sha256))
    iso_family = inspection.family if inspection else None
    family = spec.windows.family if spec.windows.family is not WindowsFamily.AUTO else iso_family
    results.append(media.check_virtio_win(spec.virtio_win.iso, family))
    results.append(media.check_packages(spec, inspection))
    return results
