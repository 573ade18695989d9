"""The plan: the spec with every ``auto`` resolved and every path decided.

Computed once per command from the spec plus what was inspected (the ISO's Windows family,
host facts).  Commands act on the plan, never on raw spec values.  Its hash, recorded in the
VM's state, tells a later run whether what it is resuming still matches.

Later issues add resolution steps here (domain capabilities, package sets, guard profiles).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.errors import SpecError, VmforgeError
from vmforge.host.domcaps import DESCRIPTOR_DIRS, DomainCaps, check_tpm, choose_loader, vars_template
from vmforge.host.pci import PciHost, passthrough_devices
from vmforge.paths import data_home, vm_dir
from vmforge.spec import (
    DiskBus,
    Firmware,
    GuardProfile,
    IvshmemModel,
    NetworkType,
    OsKind,
    Spec,
    Toggle,
    VirtType,
    WindowsFamily,
    stable_hash,
)
from vmforge.units import next_pow2

SYSTEM_POOL_DIR = Path("/var/lib/vmforge/images")
SHM_DIR = Path("/dev/shm")  # noqa: S108 - where QEMU creates ivshmem backing files
IVSHMEM_SOCKET_DIR = Path("/run/vmforge")  # doorbell servers' sockets
IVSHMEM_OVERHEAD = 4 * 1024**2

# Families whose installers need the legacy shapes.
LEGACY_FAMILIES = frozenset({WindowsFamily.W7})
# Windows 11 checks for secure boot and TPM 2.0 at setup.
SECURE_BOOT_FAMILIES = frozenset({WindowsFamily.W11})
TPM_FAMILIES = frozenset({WindowsFamily.W11})


@dataclass(frozen=True)
class MediaFacts:
    """What ISO inspection found that the plan depends on (filled by the media module)."""

    family: WindowsFamily
    iso_sha256: str | None = None


@dataclass(frozen=True)
class DiskPlan:
    size: int
    bus: str
    pool: str
    pool_dir: Path | None  # None: the pool must already exist on a remote host
    volume: str
    format: str = "qcow2"


@dataclass(frozen=True)
class IvshmemPlan:
    name: str
    size: int
    model: IvshmemModel
    path: Path
    socket: Path | None = None  # doorbell: the ivshmem server's unix socket


@dataclass(frozen=True)
class HostFacts:
    """What the libvirt host offers; injected so plans are reproducible in tests.

    ``firmware_dirs`` None: the firmware descriptors are not readable from here (remote host).
    """

    caps: DomainCaps
    pci: PciHost | None = None
    firmware_dirs: tuple[Path, ...] | None = DESCRIPTOR_DIRS


@dataclass(frozen=True)
class UefiPlan:
    loader: str
    secure: bool
    nvram_template: str | None  # None: libvirt pairs it with the loader at start


@dataclass(frozen=True)
class GpuPlan:
    functions: tuple[str, ...]  # PCI addresses of every function passed through
    rom_function: str | None  # the display function that gets the ROM file
    rom: Path | None
    hide_hypervisor: bool
    devices_named: bool = True


@dataclass(frozen=True)
class DirectBoot:
    """A kernel, initrd and command line QEMU boots directly (paths the hypervisor can read)."""

    kernel: Path
    initrd: Path
    cmdline: str


@dataclass(frozen=True)
class MediaPlan:
    installer_iso: Path | None
    virtio_win_iso: Path | None
    answer_iso: Path | None  # written by the media step into the VM's media folder (None: a probe without one)


@dataclass(frozen=True)
class PolicyPlan:
    """One registry value a guard enforces: ``scope`` 'user' (each desktop user and the default
    profile) or 'machine' (HKLM)."""

    scope: str
    key: str
    name: str
    kind: str  # 'dword' or 'string'
    value: int | str

    @property
    def id(self) -> str:
        return f"{self.scope}:{self.key}\\{self.name}"


@dataclass(frozen=True)
class WatchdogPlan:
    debounce_ms: int
    interval_s: int
    max_failures: int


@dataclass(frozen=True)
class GuardsPlan:
    profile: str
    guards: tuple[str, ...]  # in enforcement order
    desktop_users: tuple[str, ...]
    default_profile: bool
    policies: tuple[PolicyPlan, ...]
    idd_hardware_id: str
    watchdog: WatchdogPlan
    user_session_timeout_s: int


@dataclass(frozen=True)
class Plan:
    name: str
    os: OsKind
    connect: str
    system_uri: bool
    virt_type: VirtType
    memory: int
    vcpus: int
    cpu_mode: str
    firmware: Firmware
    tpm: bool
    family: WindowsFamily | None
    computer_name: str | None
    disk: DiskPlan
    network: NetworkType
    network_source: str
    display_width: int
    display_height: int
    display_heads: int
    ivshmem: IvshmemPlan | None
    vm_dir: Path
    spec_hash: str
    machine: str = "q35"
    uefi: UefiPlan | None = None  # None with UEFI firmware: host facts not read yet
    gpu: GpuPlan | None = None
    media: MediaPlan | None = None
    vnc_listen: str | None = "127.0.0.1"  # None: no VNC
    mac: str | None = None
    cpu_pinning: tuple[int, ...] = ()
    hugepages: bool = False
    hibernate: bool = False
    serial_log: Path | None = None  # None on remote hosts: read through the console stream
    host_resolved: bool = False
    direct_boot: DirectBoot | None = None  # set only by the probe transform (vmforge/probe/transform.py)
    notes: tuple[str, ...] = field(default=())
    guards: GuardsPlan | None = None  # None: no guard profile

    def to_data(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [convert(v) for v in value]
            if hasattr(value, "value") and isinstance(value.value, str):
                return value.value
            return value

        return {k: convert(v) for k, v in dataclasses.asdict(self).items()}

    def digest(self) -> str:
        return stable_hash(self.to_data())


def resolve_plan(
    spec: Spec,
    *,
    media: MediaFacts | None = None,
    env: Mapping[str, str] | None = None,
    host: HostFacts | None = None,
) -> Plan:
    """Resolve every ``auto`` in ``spec``; ``media`` carries what ISO inspection found,
    ``host`` what the libvirt host offers (firmware, TPM, PCI devices) - without it the
    host-dependent parts (UEFI paths, passthrough functions) stay unresolved."""
    env = os.environ if env is None else env
    notes: list[str] = []
    family = _resolve_family(spec, media)
    firmware = _resolve_firmware(spec, family)
    tpm = _resolve_tpm(spec, family)
    if tpm and spec.os is OsKind.WINDOWS and firmware is Firmware.BIOS and family in TPM_FAMILIES:
        notes.append("Windows 11 on BIOS firmware installs only with the hardware-check bypass")
    system_uri = _is_system_uri(spec.vm.connect)
    directory = vm_dir(spec.vm.name, env)
    return Plan(
        name=spec.vm.name,
        os=spec.os,
        connect=spec.vm.connect,
        system_uri=system_uri,
        virt_type=spec.vm.virt_type,
        memory=spec.vm.memory,
        vcpus=spec.vm.vcpus,
        cpu_mode=_resolve_cpu(spec),
        firmware=firmware,
        tpm=tpm,
        family=family,
        computer_name=_resolve_computer_name(spec),
        disk=DiskPlan(
            size=spec.disk.size,
            bus=_resolve_disk_bus(spec, family).value,
            pool=spec.disk.pool,
            pool_dir=spec.disk.pool_dir or _pool_dir(spec.vm.connect, env),
            volume=f"{spec.vm.name}.qcow2",
        ),
        network=spec.network.type,
        network_source=spec.network.source,
        display_width=spec.display.width,
        display_height=spec.display.height,
        display_heads=spec.display.heads,
        ivshmem=_resolve_ivshmem(spec),
        vm_dir=directory,
        spec_hash=spec.digest(),
        notes=tuple(notes),
        machine=host.caps.machine if host else "q35",
        uefi=_resolve_uefi(firmware, tpm, host),
        gpu=_resolve_gpu(spec, host),
        media=MediaPlan(
            installer_iso=spec.windows.iso,
            virtio_win_iso=spec.virtio_win.iso,
            answer_iso=directory / "media" / "answer.iso",
        )
        if spec.os is OsKind.WINDOWS
        else None,
        vnc_listen=spec.display.vnc_listen if spec.display.vnc else None,
        mac=spec.network.mac,
        cpu_pinning=spec.vm.cpu_pinning,
        hugepages=spec.vm.hugepages,
        hibernate=spec.vm.hibernate,
        serial_log=directory / "logs" / "serial0.log" if is_local_uri(spec.vm.connect) else None,
        host_resolved=host is not None,
        guards=resolve_guards(spec, family),
    )


POLICIES_SYSTEM_KEY = "Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\System"
POLICIES_EXPLORER_KEY = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer"
# Specialized displays: Windows 10 2004+ in these editions only (EditionID values; N and LTSC variants).
SPECIALIZED_EDITION_IDS = (
    "Enterprise",
    "EnterpriseN",
    "EnterpriseS",
    "EnterpriseSN",
    "ProfessionalWorkstation",
    "ProfessionalWorkstationN",
    "IoTEnterprise",
    "IoTEnterpriseS",
)
SPECIALIZED_MIN_BUILD = 19041
_SPECIALIZED_NAME_RE = re.compile(r"enterprise|pro(fessional)? for workstations|workstation", re.IGNORECASE)
_SPECIALIZED_FAMILIES = frozenset({WindowsFamily.W10, WindowsFamily.W11})


def resolve_guards(spec: Spec, family: WindowsFamily | None) -> GuardsPlan | None:
    """The guard profile: which guards, for whom, with which registry values."""
    section = spec.guards
    if section.profile is GuardProfile.NONE:
        return None
    if spec.os is not OsKind.WINDOWS:
        raise SpecError(
            f"guards.profile = '{section.profile.value}' guards a Windows desktop, but os = '{spec.os.value}'",
            hint="set guards.profile = 'none' for a probe guest",
        )
    guards = section.selected
    if "specialized-panel" in guards:
        _check_specialized_edition(spec, family)
    policies: list[PolicyPlan] = []
    if "policies" in guards:
        policies += [
            PolicyPlan("user", POLICIES_SYSTEM_KEY, "NoDispCPL", "dword", 1),
            PolicyPlan("user", POLICIES_SYSTEM_KEY, "NoDispSettingsPage", "dword", 1),
        ]
        if section.hidden_settings_pages:
            value = "hide:" + ";".join(section.hidden_settings_pages)
            policies.append(PolicyPlan("machine", POLICIES_EXPLORER_KEY, "SettingsPageVisibility", "string", value))
        for extra in section.extra_policies:
            policies.append(PolicyPlan(extra.scope.value, extra.key, extra.name, extra.kind.value, extra.value))
        ids = [p.id.lower() for p in policies]
        twice = [p.id for n, p in enumerate(policies) if p.id.lower() in ids[:n]]
        if twice:
            raise SpecError(
                f"guards.extra_policies sets {twice[0]} which another policy already sets",
                hint="each registry value may be enforced once; remove the duplicate",
            )
    return GuardsPlan(
        profile=section.profile.value,
        guards=guards,
        desktop_users=section.desktop_users or (spec.windows.admin_user,),
        default_profile=section.default_profile,
        policies=tuple(policies),
        idd_hardware_id=section.idd_hardware_id,
        watchdog=WatchdogPlan(
            debounce_ms=section.watchdog_debounce_ms,
            interval_s=max(1, round(section.watchdog_interval)),
            max_failures=section.watchdog_max_failures,
        ),
        user_session_timeout_s=max(1, round(section.user_session_timeout)),
    )


def _check_specialized_edition(spec: Spec, family: WindowsFamily | None) -> None:
    """Refuse what the spec already shows cannot have specialized displays; the guest's own
    EditionID is checked again before anything changes (an image index says nothing here)."""
    hint = (
        "specialized displays need Windows 10 2004+/11 Enterprise, Pro for Workstations or IoT Enterprise; "
        "pick such an edition, or use guards.profile = 'desktop'"
    )
    if family is not None and family not in _SPECIALIZED_FAMILIES:
        raise SpecError(
            f"guards.profile = 'compositor' with the specialized-panel guard, but Windows {family.value} "
            "has no specialized displays",
            hint=hint,
        )
    edition = spec.windows.edition
    if isinstance(edition, str) and not _SPECIALIZED_NAME_RE.search(edition):
        raise SpecError(
            f"guards.profile = 'compositor' with the specialized-panel guard, but windows.edition = "
            f"{edition!r} has no specialized displays",
            hint=hint,
        )


def _resolve_uefi(firmware: Firmware, tpm: bool, host: HostFacts | None) -> UefiPlan | None:
    if host is None:
        return None
    if tpm:
        check_tpm(host.caps)
    if firmware is Firmware.BIOS:
        return None
    secure = firmware is Firmware.UEFI_SECURE
    if secure and not host.caps.secure_boot:
        raise VmforgeError(
            "vm.firmware = 'uefi-secure' but the libvirt host's OVMF offers no secure boot",
            hint="install OVMF with secure boot (Debian: ovmf), or set vm.firmware = 'uefi'",
        )
    loader = choose_loader(host.caps, secure)
    template = vars_template(loader, secure, host.firmware_dirs) if host.firmware_dirs is not None else None
    return UefiPlan(loader=loader, secure=secure, nvram_template=template)


def _resolve_gpu(spec: Spec, host: HostFacts | None) -> GpuPlan | None:
    if not spec.gpu.devices:
        return None
    if host is None or host.pci is None:
        return GpuPlan(functions=(), rom_function=None, rom=spec.gpu.rom, hide_hypervisor=spec.gpu.hide_hypervisor)
    devices = passthrough_devices(host.pci, spec.gpu.devices, spec.gpu.allow_shared_group)
    display = next(d for d in devices if d.is_display)
    return GpuPlan(
        functions=tuple(str(d.address) for d in devices),
        rom_function=str(display.address) if spec.gpu.rom else None,
        rom=spec.gpu.rom,
        hide_hypervisor=spec.gpu.hide_hypervisor,
    )


def _resolve_family(spec: Spec, media: MediaFacts | None) -> WindowsFamily | None:
    if spec.os is OsKind.PROBE:
        return None
    if spec.windows.family is not WindowsFamily.AUTO:
        if media is not None and media.family is not spec.windows.family:
            raise SpecError(
                f"windows.family = '{spec.windows.family.value}' but the ISO holds Windows {media.family.value}",
                hint="remove windows.family (the ISO decides) or use the matching ISO",
            )
        return spec.windows.family
    if media is not None:
        return media.family
    needs = [
        name
        for name, value in (
            ("vm.firmware", spec.vm.firmware),
            ("vm.tpm", spec.vm.tpm),
            ("disk.bus", spec.disk.bus),
        )
        if value.value == "auto"
    ]
    if not needs:
        return None
    raise SpecError(
        f"{', '.join(needs)} = 'auto' needs the Windows family, and neither windows.iso nor windows.family gives it",
        hint="set windows.iso to the installer ISO (it is inspected), or set windows.family, "
        "e.g. --set windows.family=11",
    )


def _resolve_firmware(spec: Spec, family: WindowsFamily | None) -> Firmware:
    if spec.vm.firmware is not Firmware.AUTO:
        return spec.vm.firmware
    if spec.os is OsKind.PROBE or family is None or family in LEGACY_FAMILIES:
        return Firmware.BIOS
    if family in SECURE_BOOT_FAMILIES:
        return Firmware.UEFI_SECURE
    return Firmware.UEFI


def _resolve_tpm(spec: Spec, family: WindowsFamily | None) -> bool:
    if spec.vm.tpm is Toggle.ON:
        return True
    if spec.vm.tpm is Toggle.OFF:
        return False
    return family in TPM_FAMILIES


def _resolve_disk_bus(spec: Spec, family: WindowsFamily | None) -> DiskBus:
    if spec.disk.bus is not DiskBus.AUTO:
        return spec.disk.bus
    if family in LEGACY_FAMILIES:
        return DiskBus.SATA
    return DiskBus.VIRTIO


def _resolve_cpu(spec: Spec) -> str:
    if spec.vm.cpu != "auto":
        return spec.vm.cpu
    # host-passthrough fails under TCG; 'maximum' is every feature the accelerator offers.
    return "host-passthrough" if spec.vm.virt_type is VirtType.KVM else "maximum"


def _resolve_computer_name(spec: Spec) -> str | None:
    if spec.os is OsKind.PROBE:
        return None
    if spec.windows.computer_name:
        return spec.windows.computer_name
    cleaned = re.sub(r"[^A-Za-z0-9-]", "-", spec.vm.name).strip("-")[:15].strip("-")
    return cleaned.upper() or "VMFORGE"


def _resolve_ivshmem(spec: Spec) -> IvshmemPlan | None:
    if not spec.ivshmem.enabled:
        return None
    name = f"vmforge-{spec.vm.name}" if spec.ivshmem.name == "auto" else spec.ivshmem.name
    size = spec.ivshmem.size
    if size == "auto":
        size = ivshmem_auto_size(spec.display.width, spec.display.height)
    assert isinstance(size, int)
    minimum = ivshmem_auto_size(spec.display.width, spec.display.height)
    if size < minimum:
        raise SpecError(
            f"ivshmem.size = {size // 1024**2}MiB is too small for {spec.display.resolution} "
            f"(three frames plus 4 MiB need {minimum // 1024**2}MiB)",
            hint=f"set ivshmem.size = 'auto' or at least {minimum // 1024**2}MiB",
        )
    socket = IVSHMEM_SOCKET_DIR / f"{name}.sock" if spec.ivshmem.model is IvshmemModel.DOORBELL else None
    return IvshmemPlan(name=name, size=size, model=spec.ivshmem.model, path=SHM_DIR / name, socket=socket)


def resolve_ivshmem(spec: Spec) -> IvshmemPlan | None:
    """Just the ivshmem part of the plan (the channel commands need no ISO facts)."""
    return _resolve_ivshmem(spec)


def ivshmem_auto_size(width: int, height: int) -> int:
    """Three BGRA frames with 256-byte aligned rows plus 4 MiB, rounded up to a power of two.

    The Looking Glass sizing rule: 1080p 32 MiB, 1440p 64, 4K 128, 5K 256, 8K 512.
    """
    pitch = math.ceil(width * 4 / 256) * 256
    return next_pow2(pitch * height * 3 + IVSHMEM_OVERHEAD)


def _is_system_uri(uri: str) -> bool:
    return uri.split("?", 1)[0].endswith("/system")


def is_local_uri(uri: str) -> bool:
    """qemu:///system and qemu:///session talk to this machine; qemu+ssh://host/... does not."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    return rest.startswith("/")


def _pool_dir(uri: str, env: Mapping[str, str]) -> Path | None:
    if not is_local_uri(uri):
        return None  # a remote host: its pool must exist there
    if _is_system_uri(uri):
        return SYSTEM_POOL_DIR
    # qemu:///session: QEMU runs as the user and can read the user's data dir.
    return data_home(env) / "images"
