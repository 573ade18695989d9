"""The libvirt daemon: reachable, its and QEMU's versions, domain capabilities, firmware, swtpm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.errors import VmforgeError
from vmforge.host.domcaps import DomainCaps, choose_loader, fetch_domcaps, vars_template
from vmforge.libvirt_conn import connect
from vmforge.spec import Firmware, VirtType

# What vmforge is tested with (Debian 12); older versions lack features the domain XML uses.
MIN_LIBVIRT = (8, 0, 0)
MIN_QEMU = (6, 2, 0)
TESTED = "libvirt 9.0 and QEMU 7.2"


def version_tuple(number: int) -> tuple[int, int, int]:
    """libvirt's packed version (major * 1,000,000 + minor * 1,000 + micro)."""
    return (number // 1_000_000, number // 1000 % 1000, number % 1000)


def show(version: tuple[int, int, int]) -> str:
    return ".".join(str(v) for v in version)


def check_libvirt_reachable(uri: str, connector: Callable[[str], Any] = connect) -> tuple[CheckResult, Any]:
    try:
        conn = connector(uri)
    except VmforgeError as exc:
        return failed("libvirt.reachable", exc.message, exc.hint or "check vm.connect"), None
    host = conn.getHostname()
    return passed("libvirt.reachable", f"connected to {uri}", f"daemon host: {host}"), conn


def check_versions(conn: Any) -> CheckResult:
    library = version_tuple(int(conn.getLibVersion()))
    driver = str(conn.getType())
    hypervisor = version_tuple(int(conn.getVersion()))
    evidence = (f"libvirt {show(library)}", f"{driver} {show(hypervisor)}")
    if library < MIN_LIBVIRT or (driver == "QEMU" and hypervisor < MIN_QEMU):
        return warned(
            "libvirt.versions",
            f"libvirt {show(library)} / {driver} {show(hypervisor)} is older than vmforge supports "
            f"(libvirt {show(MIN_LIBVIRT)}+, QEMU {show(MIN_QEMU)}+)",
            f"upgrade libvirt and QEMU (vmforge is tested with {TESTED})",
            *evidence,
        )
    return passed("libvirt.versions", f"libvirt {show(library)}, {driver} {show(hypervisor)}", *evidence)


def check_domain_caps(conn: Any, virt_type: VirtType) -> tuple[CheckResult, DomainCaps | None]:
    try:
        caps = fetch_domcaps(conn, virt_type.value)
    except VmforgeError as exc:
        fix = (
            'check /dev/kvm (see kvm.device and kvm.access) or set vm.virt_type = "qemu"'
            if virt_type is VirtType.KVM
            else "install qemu-system-x86 on the libvirt host and restart libvirtd"
        )
        return failed("libvirt.domcaps", exc.message, fix), None
    return (
        passed(
            "libvirt.domcaps",
            f"domain capabilities for {virt_type.value} on {caps.machine}",
            f"loaders: {', '.join(caps.loaders) or 'none'}",
            f"CPU modes: {', '.join(caps.cpu_modes)}",
            f"TPM emulator: {'yes' if caps.tpm_emulator else 'no'}",
        ),
        caps,
    )


def check_cpu_mode(caps: DomainCaps | None, cpu_mode: str, virt_type: VirtType) -> CheckResult:
    if caps is None:
        return skipped("libvirt.cpu-mode", "no domain capabilities (see libvirt.domcaps)")
    if cpu_mode not in ("host-passthrough", "host-model", "maximum"):
        return skipped("libvirt.cpu-mode", f"vm.cpu = '{cpu_mode}' names a CPU model; libvirt checks it at start")
    if cpu_mode in caps.cpu_modes:
        return passed("libvirt.cpu-mode", f"CPU mode {cpu_mode} is offered for {virt_type.value}")
    return failed(
        "libvirt.cpu-mode",
        f"CPU mode {cpu_mode} is not offered for {virt_type.value} (offered: {', '.join(caps.cpu_modes)})",
        'set vm.cpu = "maximum" (or another offered mode); host-passthrough needs KVM',
    )


def check_firmware(
    caps: DomainCaps | None, firmware: Firmware, descriptor_dirs: Sequence[Path] | None
) -> list[CheckResult]:
    if firmware is Firmware.BIOS:
        reason = "the plan uses BIOS firmware (SeaBIOS ships with QEMU)"
        return [skipped("firmware.uefi", reason), skipped("firmware.vars-template", reason)]
    if caps is None:
        reason = "no domain capabilities (see libvirt.domcaps)"
        return [skipped("firmware.uefi", reason), skipped("firmware.vars-template", reason)]
    secure = firmware is Firmware.UEFI_SECURE
    fix = "install OVMF on the libvirt host (Debian: apt-get install ovmf) and restart libvirtd"
    if secure and not caps.secure_boot:
        return [
            failed(
                "firmware.uefi",
                "vm.firmware needs secure boot but the host's OVMF offers none",
                fix + ', or set vm.firmware = "uefi"',
                f"loaders: {', '.join(caps.loaders) or 'none'}",
            ),
            skipped("firmware.vars-template", "no secure-boot loader"),
        ]
    try:
        loader = choose_loader(caps, secure)
    except VmforgeError as exc:
        return [failed("firmware.uefi", exc.message, exc.hint or fix), skipped("firmware.vars-template", "no loader")]
    result = passed("firmware.uefi", f"{'secure-boot ' if secure else ''}OVMF loader {loader}")
    if descriptor_dirs is None:
        return [result, skipped("firmware.vars-template", "remote host: libvirt pairs the vars template at start")]
    template = vars_template(loader, secure, descriptor_dirs)
    where = ", ".join(str(d) for d in descriptor_dirs)
    if template is None:
        return [
            result,
            warned(
                "firmware.vars-template",
                f"no firmware descriptor in {where} names {loader}; libvirt must find the vars template itself",
                "reinstall ovmf (it ships the descriptors in /usr/share/qemu/firmware)",
            ),
        ]
    keys = " with Microsoft keys enrolled" if secure else ""
    summary = f"vars template{keys}: {template}"
    return [result, passed("firmware.vars-template", summary, f"descriptors read from {where}")]


def check_swtpm(caps: DomainCaps | None, tpm: bool, swtpm_binary: Path | None) -> CheckResult:
    if not tpm:
        return skipped("tpm.swtpm", "the plan has no TPM")
    if caps is None:
        return skipped("tpm.swtpm", "no domain capabilities (see libvirt.domcaps)")
    fix = 'install swtpm and swtpm-tools on the libvirt host (Debian) and restart libvirtd, or set vm.tpm = "off"'
    if not caps.tpm_emulator:
        return failed("tpm.swtpm", "the libvirt host offers no emulated TPM (no swtpm backend)", fix)
    if swtpm_binary is not None and not swtpm_binary.exists():
        return failed("tpm.swtpm", f"libvirt offers an emulated TPM but {swtpm_binary} is missing", fix)
    found = f"{swtpm_binary} present" if swtpm_binary is not None else "remote host: binary not checked"
    return passed("tpm.swtpm", "TPM 2.0 emulation (swtpm) is available", found)
