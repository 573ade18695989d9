"""The spec: what the user asked for, typed, immutable, validated once.

A spec is a TOML file (``vmforge.toml`` by default) plus command-line overrides.  It is parsed
into frozen pydantic models; every problem is reported with the file, the key and the bad value.
What the spec leaves as ``auto`` is resolved later, in :mod:`vmforge.plan`.

Later issues add fields *into* these sections (never beside them).  Every field carries a
``description``: it feeds ``docs/spec-reference.md`` and the starter spec.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vmforge.domain.cpu import split_model
from vmforge.errors import SpecError
from vmforge.units import format_duration, format_size, parse_duration, parse_size

SPEC_VERSION = 1
DEFAULT_SPEC_FILE = "vmforge.toml"
SPEC_HINT = "see docs/spec-reference.md, or run 'vmforge spec init' for a commented example"


# --- value types -----------------------------------------------------------------------------

Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
"""Bytes; written ``8GiB`` / ``512MiB`` / ``64GB``; shown in the shortest binary form."""

Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
"""Seconds; written ``90s`` / ``20m`` / ``2h``."""


def _parse_size_or_auto(value: object) -> int | str:
    if value == "auto":
        return "auto"
    return parse_size(value)


SizeOrAuto = Annotated[
    int | Literal["auto"],
    BeforeValidator(_parse_size_or_auto),
    PlainSerializer(lambda v: v if v == "auto" else format_size(v), return_type=str),
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_RESOLUTION_RE = re.compile(r"^(\d{3,5})x(\d{3,5})$")
_PCI_ADDRESS_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_PCI_ID_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
MAX_RESOLUTION = (7680, 4320)


class OsKind(StrEnum):
    WINDOWS = "windows"
    PROBE = "probe"


class VirtType(StrEnum):
    KVM = "kvm"
    QEMU = "qemu"


class Firmware(StrEnum):
    AUTO = "auto"
    UEFI = "uefi"
    UEFI_SECURE = "uefi-secure"
    BIOS = "bios"


class Toggle(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class DiskBus(StrEnum):
    AUTO = "auto"
    VIRTIO = "virtio"
    SATA = "sata"
    SCSI = "scsi"


class NetworkType(StrEnum):
    NETWORK = "network"
    BRIDGE = "bridge"
    USER = "user"
    NONE = "none"


class WindowsFamily(StrEnum):
    AUTO = "auto"
    W7 = "7"
    W81 = "8.1"
    W10 = "10"
    W11 = "11"
    S2016 = "2016"
    S2019 = "2019"
    S2022 = "2022"
    S2025 = "2025"


class IvshmemModel(StrEnum):
    PLAIN = "plain"
    DOORBELL = "doorbell"


class RemoteChannel(StrEnum):
    AGENT = "agent"
    WINRM = "winrm"
    SSH = "ssh"


class WinrmScheme(StrEnum):
    HTTPS = "https"
    HTTP = "http"


class WinrmAuth(StrEnum):
    NTLM = "ntlm"
    BASIC = "basic"


class AddressSource(StrEnum):
    LEASE = "lease"
    AGENT = "agent"
    ARP = "arp"


# --- sections --------------------------------------------------------------------------------


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class VmSection(Section):
    name: str = Field("win", description="Domain name; also names the VM's state folder.")
    connect: str = Field("qemu:///system", description="libvirt connection URI.")
    virt_type: VirtType = Field(VirtType.KVM, description="'kvm' (hardware virtualisation) or 'qemu' (TCG emulation).")
    memory: Size = Field(4 * 1024**3, description="Guest memory, e.g. 8GiB.")
    vcpus: int = Field(2, ge=1, le=512, description="Number of virtual CPUs.")
    cpu: str = Field(
        "auto",
        description="CPU mode: 'auto' (host-passthrough on kvm, 'maximum' on qemu), "
        "'host-passthrough', 'host-model', 'maximum', or a named QEMU model, optionally with "
        "features the QEMU way ('Skylake-Client,+rdrand,-hle').",
    )
    firmware: Firmware = Field(
        Firmware.AUTO,
        description="'uefi', 'uefi-secure' (secure boot with Microsoft keys), 'bios', or 'auto' "
        "(from the Windows family).",
    )
    tpm: Toggle = Field(Toggle.AUTO, description="Emulated TPM 2.0: 'on', 'off' or 'auto' (on for Windows 11).")
    cpu_pinning: tuple[int, ...] = Field(
        (), description="Host CPU for each vCPU in order, e.g. [2, 3, 4, 5]; empty: no pinning."
    )
    hugepages: bool = Field(False, description="Back guest memory with the host's (pre-allocated) huge pages.")
    hibernate: bool = Field(False, description="Allow the guest to hibernate (ACPI S4, suspend-to-disk).")
    snapshot: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
        description="Label of an offline snapshot (disk overlay, NVRAM and TPM state) that create takes "
        "as its last step and marks known-good; the VM is shut down for it and started again. Unset: none.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("a VM name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("cpu")
    @classmethod
    def _check_cpu(cls, value: str) -> str:
        split_model(value)  # ValueError names the bad flag
        return value

    @model_validator(mode="after")
    def _check_pinning(self) -> VmSection:
        if self.cpu_pinning and len(self.cpu_pinning) != self.vcpus:
            raise ValueError(
                f"vm.cpu_pinning lists {len(self.cpu_pinning)} host CPUs for {self.vcpus} vCPUs; give one per vCPU"
            )
        if any(cpu < 0 for cpu in self.cpu_pinning):
            raise ValueError("vm.cpu_pinning: host CPU numbers start at 0")
        return self

    @field_validator("connect")
    @classmethod
    def _check_connect(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("a libvirt URI looks like qemu:///system or qemu:///session")
        return value


class DiskSection(Section):
    size: Size = Field(64 * 1024**3, description="Size of the system disk, e.g. 64GiB.")
    pool: str = Field(
        "vmforge",
        description="libvirt storage pool for disk images (created by vmforge when missing).",
    )
    pool_dir: Path | None = Field(
        None,
        description="Directory for the pool when vmforge creates it; default /var/lib/vmforge/images "
        "(qemu:///system) or ~/.local/share/vmforge/images (qemu:///session). QEMU must be able to reach it.",
    )
    bus: DiskBus = Field(
        DiskBus.AUTO,
        description="'virtio', 'sata', 'scsi' or 'auto' (virtio; sata for Windows 7).",
    )


class NetworkSection(Section):
    type: NetworkType = Field(
        NetworkType.NETWORK,
        description="'network' (a libvirt network), 'bridge' (a host bridge), 'user' (user-mode networking) or 'none'.",
    )
    source: str = Field("default", description="The libvirt network or host bridge name.")
    mac: str | None = Field(None, description="Fixed MAC address; libvirt picks one when unset.")

    @field_validator("mac")
    @classmethod
    def _check_mac(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", value):
            raise ValueError("a MAC address looks like 52:54:00:12:34:56")
        return value


class DisplaySection(Section):
    resolution: str = Field("1920x1080", description="Display resolution WIDTHxHEIGHT, up to 7680x4320.")
    heads: int = Field(1, ge=1, le=16, description="Number of virtio-gpu heads (monitors).")
    vnc: bool = Field(True, description="Offer a VNC console (bound to vnc_listen).")
    vnc_listen: str = Field("127.0.0.1", description="Address the VNC server listens on.")
    idd_monitors: int = Field(
        1, ge=1, le=16, description="Virtual monitors the indirect display driver (MttVDD) creates."
    )
    idd_resolutions: tuple[str, ...] = Field(
        (), description="Modes the virtual monitors offer, WIDTHxHEIGHT; empty: display.resolution only."
    )
    refresh_rates: tuple[int, ...] = Field(
        (60,), description="Refresh rates (Hz) the virtual monitors offer for every mode."
    )

    @field_validator("resolution")
    @classmethod
    def _check_resolution(cls, value: str) -> str:
        match = _RESOLUTION_RE.match(value)
        if not match:
            raise ValueError("write the resolution as WIDTHxHEIGHT, e.g. 1920x1080")
        width, height = int(match.group(1)), int(match.group(2))
        if width > MAX_RESOLUTION[0] or height > MAX_RESOLUTION[1] or width < 640 or height < 480:
            raise ValueError("the resolution must lie between 640x480 and 7680x4320")
        return value

    @field_validator("idd_resolutions")
    @classmethod
    def _check_idd_resolutions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for mode in value:
            cls._check_resolution(mode)
        return value

    @field_validator("refresh_rates")
    @classmethod
    def _check_refresh_rates(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 24 <= rate <= 500 for rate in value):
            raise ValueError("give at least one refresh rate, each between 24 and 500 Hz")
        return value

    @property
    def width(self) -> int:
        return int(self.resolution.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.resolution.split("x")[1])


class WindowsSection(Section):
    iso: Path | None = Field(None, description="The Windows installer ISO.")
    iso_sha256: str | None = Field(None, description="Expected sha256 of the ISO; a mismatch is an error.")
    family: WindowsFamily = Field(
        WindowsFamily.AUTO,
        description="Windows family ('7', '8.1', '10', '11', '2016', '2019', '2022', '2025'); "
        "'auto' reads it from the ISO.",
    )
    edition: str | int | None = Field(None, description="Edition to install, by image name or index in install.wim.")
    product_key: str | None = Field(None, description="Product key; unset uses the edition's generic setup key.")
    locale: str = Field("en-US", description="UI, system and user locale.")
    keyboard: str = Field("en-US", description="Input locale (keyboard layout).")
    timezone: str = Field("UTC", description="Windows time zone name, e.g. 'W. Europe Standard Time'.")
    computer_name: str | None = Field(
        None, description="NetBIOS computer name (max 15 chars); default derived from vm.name."
    )
    admin_user: str = Field("vmforge", description="Local administrator account created by Setup.")
    password: SecretStr = Field(
        SecretStr("generate"),
        description="Administrator password; 'generate' makes a random one kept in the VM's 0600 secrets file.",
    )
    hardware_bypass: Toggle = Field(
        Toggle.AUTO,
        description="Windows 11 Setup's hardware checks bypass (TPM, Secure Boot, RAM, CPU, storage): "
        "'auto' (on when the VM has no TPM or no Secure Boot), 'on' (also allows a VM below the minimums) or 'off'.",
    )
    recovery_partition: bool = Field(
        False, description="UEFI layouts: add a 1 GiB Windows recovery partition before the Windows partition."
    )

    @field_validator("family", mode="before")
    @classmethod
    def _family_as_text(cls, value: object) -> object:
        # --set windows.family=11 arrives as a TOML integer; 8.1 as a float.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("iso_sha256")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
                raise ValueError("a sha256 is 64 hexadecimal digits")
            return value.lower()
        return value

    @field_validator("computer_name")
    @classmethod
    def _check_computer_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,15}", value):
            raise ValueError("a computer name is 1-15 letters, digits or '-'")
        return value

    @field_validator("edition")
    @classmethod
    def _check_edition(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("image indexes start at 1")
        return value


class VirtioWinSection(Section):
    iso: Path | None = Field(None, description="The virtio-win driver ISO (drivers for WinPE and the guest agent).")


class GpuSection(Section):
    devices: tuple[str, ...] = Field(
        (),
        description="PCI devices to pass through: addresses like '0000:01:00.0' or ids like '10de:2204'.",
    )
    rom: Path | None = Field(None, description="ROM file for the GPU (when its own is unusable).")
    hide_hypervisor: bool = Field(
        False, description="Hide KVM from the guest and set a Hyper-V vendor id (NVIDIA drivers)."
    )
    allow_shared_group: bool = Field(
        False,
        description="Pass only the card's own functions when its IOMMU group holds other devices "
        "(unsafe without ACS); by default such a group is refused.",
    )

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for device in value:
            if not (_PCI_ADDRESS_RE.match(device) or _PCI_ID_RE.match(device)):
                raise ValueError(f"{device!r} is neither a PCI address (0000:01:00.0) nor an id (10de:2204)")
        return value


class IvshmemSection(Section):
    enabled: bool = Field(False, description="Add an ivshmem shared-memory device.")
    name: str = Field("auto", description="Shared-memory name (/dev/shm/NAME); 'auto' is vmforge-<vm.name>.")
    size: SizeOrAuto = Field(
        "auto",
        description="Power-of-two size, or 'auto' (sized for three frames at the display "
        "resolution plus 4 MiB, rounded up to a power of two).",
    )
    model: IvshmemModel = Field(
        IvshmemModel.PLAIN, description="'plain' (polling) or 'doorbell' (interrupts via a server)."
    )

    @field_validator("size")
    @classmethod
    def _check_pow2(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value & (value - 1):
            raise ValueError("the ivshmem size must be a power of two, e.g. 32MiB or 64MiB")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value != "auto" and not _NAME_RE.match(value):
            raise ValueError("a shared-memory name is letters, digits, '.', '_' or '-'")
        return value


class PackageRef(Section):
    name: str = Field(description="Package name: a folder in guest-drivers/ or at 'path'.")
    path: Path | None = Field(
        None,
        description="Folder holding the package's files (and its package.toml when not built in); "
        "default $STATE/packages/<name>/.",
    )


class GuardProfile(StrEnum):
    NONE = "none"
    DESKTOP = "desktop"
    COMPOSITOR = "compositor"


GUARD_NAMES = ("policies", "idd-desktop", "specialized-panel", "topology-watchdog")
"""Every guard vmforge knows, in the order they are enforced."""

PROFILE_GUARDS: dict[GuardProfile, tuple[str, ...]] = {
    GuardProfile.NONE: (),
    GuardProfile.DESKTOP: ("policies", "idd-desktop"),
    GuardProfile.COMPOSITOR: GUARD_NAMES,
}

_REG_KEY_RE = re.compile(r"^[A-Za-z0-9 _.\\-]{1,255}$")


class PolicyScope(StrEnum):
    USER = "user"
    MACHINE = "machine"


class PolicyKind(StrEnum):
    DWORD = "dword"
    STRING = "string"


class ExtraPolicy(Section):
    scope: PolicyScope = Field(
        description="'user' (every desktop user and the default profile, under HKCU) or 'machine' (HKLM)."
    )
    key: str = Field(
        description="Registry key below HKCU/HKLM, e.g. 'Software\\Policies\\Microsoft\\Windows\\Explorer'."
    )
    name: str = Field(description="Value name.")
    kind: PolicyKind = Field(PolicyKind.DWORD, description="'dword' or 'string'.")
    value: int | str = Field(description="The value the guard enforces.")

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if not _REG_KEY_RE.match(value) or value.startswith("\\") or "\\\\" in value:
            raise ValueError("a registry key is names separated by single backslashes, without the hive")
        if value.split("\\", 1)[0].upper() in {"HKCU", "HKLM", "HKEY_CURRENT_USER", "HKEY_LOCAL_MACHINE"}:
            raise ValueError("leave the hive out of the key; 'scope' chooses it")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9 _.-]{1,255}", value):
            raise ValueError("a value name is letters, digits, ' ', '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _check_value(self) -> ExtraPolicy:
        if self.kind is PolicyKind.DWORD and (not isinstance(self.value, int) or not 0 <= self.value <= 0xFFFFFFFF):
            raise ValueError(f"a dword policy value is an integer from 0 to 4294967295, not {self.value!r}")
        if self.kind is PolicyKind.STRING and not isinstance(self.value, str):
            raise ValueError(f"a string policy value is written in quotes, not {self.value!r}")
        return self


class GuardsSection(Section):
    profile: GuardProfile = Field(
        GuardProfile.NONE,
        description="'none', 'desktop' (policies, idd-desktop) or 'compositor' (also the experimental "
        "specialized-panel and the topology-watchdog; needs an Enterprise, Pro for Workstations or IoT "
        "Enterprise edition).",
    )
    guards: tuple[str, ...] = Field(
        (),
        description="The guards to run, when not the profile's own set: 'policies', 'idd-desktop', "
        "'specialized-panel', 'topology-watchdog'.",
    )
    desktop_users: tuple[str, ...] = Field(
        (), description="Accounts that use the desktop (user-scope policies); empty: windows.admin_user."
    )
    default_profile: bool = Field(
        True, description="Also write the user-scope policies into the default profile (accounts made later)."
    )
    hidden_settings_pages: tuple[str, ...] = Field(
        ("display",),
        description="Settings pages hidden machine-wide (SettingsPageVisibility 'hide:...'), e.g. ['display'].",
    )
    extra_policies: tuple[ExtraPolicy, ...] = Field(
        (), description="More registry policies to enforce: tables with scope, key, name, kind, value."
    )
    idd_hardware_id: str = Field(
        "Root\\MttVDD", description="Hardware id of the indirect display (IDD) device that carries the desktop."
    )
    watchdog_debounce_ms: int = Field(
        250,
        ge=1,
        le=60000,
        description="Topology watchdog: milliseconds to wait after a display change before re-checking.",
    )
    watchdog_interval: Duration = Field(5.0, description="Topology watchdog: periodic re-check interval.")
    watchdog_max_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Topology watchdog: failed re-applies in a row before the safety valve "
        "gives the panel back to the desktop (and stops re-applying).",
    )
    user_session_timeout: Duration = Field(
        30.0, description="How long a check waits for the desktop user's session to answer."
    )

    @field_validator("guards")
    @classmethod
    def _check_guards(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in GUARD_NAMES:
                close = difflib.get_close_matches(name, GUARD_NAMES, n=1, cutoff=0.5)
                tail = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(GUARD_NAMES)})"
                raise ValueError(f"unknown guard {name!r}{tail}")
        if len(set(value)) != len(value):
            raise ValueError("a guard is listed twice")
        return value

    @field_validator("desktop_users")
    @classmethod
    def _check_users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user in value:
            if not re.fullmatch(r"[^\"/\\\[\]:;|=,+*?<>@]{1,20}", user) or user.strip(" .") != user:
                raise ValueError(
                    f'{user!r} is not a local Windows account name (1-20 characters, no "/\\[]:;|=,+*?<>@)'
                )
        return value

    @field_validator("hidden_settings_pages")
    @classmethod
    def _check_pages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for page in value:
            if not re.fullmatch(r"[a-z0-9-]{1,64}", page):
                raise ValueError(f"{page!r} is not a Settings page name such as 'display' or 'windowsupdate'")
        return value

    @field_validator("idd_hardware_id")
    @classmethod
    def _check_hwid(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_&\\-]{1,200}", value):
            raise ValueError("a hardware id looks like Root\\MttVDD")
        return value

    @model_validator(mode="after")
    def _check_profile(self) -> GuardsSection:
        if "specialized-panel" in self.guards and self.profile is not GuardProfile.COMPOSITOR:
            raise ValueError("the specialized-panel guard needs guards.profile = 'compositor'")
        if self.guards and self.profile is GuardProfile.NONE:
            raise ValueError("guards.guards is set but guards.profile = 'none'; choose 'desktop' or 'compositor'")
        return self

    @property
    def selected(self) -> tuple[str, ...]:
        """The guards to run, in enforcement order."""
        chosen = self.guards or PROFILE_GUARDS[self.profile]
        return tuple(name for name in GUARD_NAMES if name in chosen)


class RemoteSection(Section):
    channels: tuple[RemoteChannel, ...] = Field(
        (RemoteChannel.AGENT, RemoteChannel.WINRM),
        description="Guest channels to set up and use, in order of preference: 'agent' (QEMU "
        "guest agent), 'winrm' (the answer media sets up its listener), 'ssh'. 'vmforge guest' "
        "uses the first that answers unless --via names one.",
    )
    address: str | None = Field(
        None, description="Guest host name or IP for WinRM/SSH; unset asks libvirt (address_sources)."
    )
    address_sources: tuple[AddressSource, ...] = Field(
        (AddressSource.LEASE, AddressSource.AGENT, AddressSource.ARP),
        description="Where libvirt looks for the guest's IP, in order: 'lease' (DHCP of a libvirt "
        "network), 'agent' (QEMU guest agent), 'arp' (host ARP table).",
    )
    winrm_scheme: WinrmScheme = Field(
        WinrmScheme.HTTPS,
        description="'https' (vmforge's per-VM certificate, pinned by fingerprint) or 'http' (needs allow_insecure).",
    )
    winrm_auth: WinrmAuth = Field(
        WinrmAuth.NTLM,
        description="'ntlm' (encrypts every message even over HTTP) or 'basic' (password in every "
        "request; over HTTP needs allow_insecure).",
    )
    winrm_port: int | None = Field(
        None, ge=1, le=65535, description="WinRM port; unset is 5986 for HTTPS, 5985 for HTTP."
    )
    allow_insecure: bool = Field(
        False,
        description="Allow WinRM over plain HTTP (no server authentication; with 'basic' also no "
        "encryption). Warned about on every use.",
    )
    ssh_port: int = Field(22, ge=1, le=65535, description="SSH port of the guest's OpenSSH server.")
    ssh_user: str | None = Field(None, description="SSH user; unset is windows.admin_user.")
    connect_timeout: Duration = Field(10.0, description="Connecting to WinRM/SSH, per attempt.")
    operation_timeout: Duration = Field(
        20.0, description="One WinRM request (WS-Man OperationTimeout); reads wait 10s longer."
    )

    @model_validator(mode="after")
    def _check_insecure(self) -> RemoteSection:
        if self.winrm_scheme == WinrmScheme.HTTP and not self.allow_insecure:
            raise ValueError(
                "remote.winrm_scheme = 'http' lets anyone on the network impersonate the guest; "
                "use 'https' or set remote.allow_insecure = true"
            )
        return self


class TimeoutsSection(Section):
    install: Duration = Field(2 * 3600.0, description="Whole unattended installation.")
    boot: Duration = Field(600.0, description="From start until the guest shows a sign of life.")
    agent: Duration = Field(300.0, description="Until the guest agent answers.")
    shutdown: Duration = Field(300.0, description="Graceful shutdown before it is forced.")


class Spec(BaseModel):
    """The whole spec.  Immutable; build it with :func:`load_spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = Field(1, description="Spec format version; must be 1.")
    os: OsKind = Field(OsKind.WINDOWS, description="'windows', or 'probe' (a tiny Linux guest for checks).")
    vm: VmSection = Field(default_factory=VmSection)
    disk: DiskSection = Field(default_factory=DiskSection)
    network: NetworkSection = Field(default_factory=NetworkSection)
    display: DisplaySection = Field(default_factory=DisplaySection)
    windows: WindowsSection = Field(default_factory=WindowsSection)
    virtio_win: VirtioWinSection = Field(default_factory=VirtioWinSection)
    gpu: GpuSection = Field(default_factory=GpuSection)
    ivshmem: IvshmemSection = Field(default_factory=IvshmemSection)
    packages: tuple[PackageRef, ...] = Field(())
    guards: GuardsSection = Field(default_factory=GuardsSection)
    remote: RemoteSection = Field(default_factory=RemoteSection)
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection)

    @model_validator(mode="after")
    def _check_combinations(self) -> Spec:
        if self.gpu.rom is not None and not self.gpu.devices:
            raise ValueError("gpu.rom is set but gpu.devices is empty")
        names = [p.name for p in self.packages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"packages listed twice: {', '.join(duplicates)}")
        return self

    # -- views ------------------------------------------------------------------------------

    def to_data(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """JSON-ready data; secrets masked unless asked for."""
        data = self.model_dump(mode="json")
        if reveal_secrets:
            data["windows"]["password"] = self.windows.password.get_secret_value()
        else:
            data["windows"]["password"] = mask_secret(self.windows.password)
        return data

    def digest(self) -> str:
        """sha256 of the spec's non-secret content (secrets are never hashed into names)."""
        return stable_hash(self.to_data(reveal_secrets=False))


def mask_secret(secret: SecretStr) -> str:
    value = secret.get_secret_value()
    return "generate" if value == "generate" else "********"


def stable_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- loading ---------------------------------------------------------------------------------


class Overrides:
    """Command-line changes to single fields, applied before validation.

    ``sets`` are ``section.key=value`` strings (value parsed as a TOML value when it is one,
    else taken as a string); ``fields`` are already-split (dotted key, value) pairs from
    dedicated options such as ``--memory`` or the positional NAME.
    """

    def __init__(self, sets: Sequence[str] = (), fields: Mapping[str, object] | None = None) -> None:
        self.items: list[tuple[str, object, str]] = []
        for text in sets:
            key, sep, raw = text.partition("=")
            key = key.strip()
            if not sep or not key or not re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)+", key):
                raise SpecError(
                    f"--set {text!r}: expected section.key=value",
                    hint="for example --set vm.vcpus=4 or --set windows.edition='Windows 11 Pro'",
                )
            self.items.append((key, _parse_override_value(raw), f"--set {key}"))
        for key, value in (fields or {}).items():
            if value is not None:
                self.items.append((key, value, f"--{key.rsplit('.', 1)[-1].replace('_', '-')}"))

    def apply(self, data: dict[str, Any]) -> dict[str, str]:
        """Apply to raw spec data in place; return a map dotted key -> where it came from."""
        origins: dict[str, str] = {}
        for key, value, origin in self.items:
            parts = key.split(".")
            node = data
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise SpecError(f"{origin}: {part!r} is not a section", hint=SPEC_HINT)
                node = child
            node[parts[-1]] = value
            origins[key] = origin
        return origins


def _parse_override_value(raw: str) -> object:
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def load_spec(
    path: Path | None,
    overrides: Overrides | None = None,
    *,
    require_file: bool = False,
) -> tuple[Spec, Path | None]:
    """Read, merge and validate a spec.  Returns the spec and the file it came from (if any).

    ``path=None`` means the default ``vmforge.toml`` in the working directory, used when present;
    with ``require_file`` its absence is an error.
    """
    overrides = overrides or Overrides()
    source: Path | None
    if path is None:
        default = Path(DEFAULT_SPEC_FILE)
        if default.exists():
            source = default
        elif require_file:
            raise SpecError(
                f"no spec file: {DEFAULT_SPEC_FILE} does not exist in {Path.cwd()}",
                hint="pass --spec FILE, or create one with 'vmforge spec init'",
            )
        else:
            source = None
    else:
        source = path
    data: dict[str, Any] = read_spec_file(source) if source is not None else {}
    if source is not None:
        _rebase_paths(data, source.resolve().parent)
    origins = overrides.apply(data)
    label = str(source) if source is not None else "command line"
    return parse_spec(data, label=label, origins=origins), source


def read_spec_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file {path} does not exist",
            hint="check the path, or create one with 'vmforge spec init PATH'",
        ) from None
    except IsADirectoryError:
        raise SpecError(f"spec file {path} is a directory", hint="pass the .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}", hint="check its permissions and encoding") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            f"{path}: TOML syntax error: {exc}",
            hint='fix the line and column named; strings need quotes, e.g. memory = "8GiB"',
        ) from None


PATH_KEYS = (("windows", "iso"), ("virtio_win", "iso"), ("gpu", "rom"), ("disk", "pool_dir"))


def _rebase_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a spec file are relative to the file, not to the working directory."""

    def rebase(value: object) -> object:
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            return str(base / value)
        if isinstance(value, str):
            return str(Path(value).expanduser())
        return value

    for section, key in PATH_KEYS:
        node = data.get(section)
        if isinstance(node, dict) and key in node:
            node[key] = rebase(node[key])
    packages = data.get("packages")
    if isinstance(packages, list):
        for package in packages:
            if isinstance(package, dict) and "path" in package:
                package["path"] = rebase(package["path"])


def check_files(spec: Spec) -> list[str]:
    """Problems with files the spec names (missing, unreadable, wrong kind); empty when fine."""
    problems: list[str] = []
    wanted: list[tuple[str, Path | None, bool]] = [
        ("windows.iso", spec.windows.iso, False),
        ("virtio_win.iso", spec.virtio_win.iso, False),
        ("gpu.rom", spec.gpu.rom, False),
    ]
    wanted += [(f"packages[{p.name}].path", p.path, True) for p in spec.packages]
    for key, path, is_dir in wanted:
        if path is None:
            continue
        if not path.exists():
            problems.append(f"{key} = '{path}': no such {'folder' if is_dir else 'file'}")
        elif is_dir and not path.is_dir():
            problems.append(f"{key} = '{path}': not a folder")
        elif not is_dir and not path.is_file():
            problems.append(f"{key} = '{path}': not a regular file")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key} = '{path}': not readable by this user")
    return problems


def parse_spec(data: Mapping[str, Any], *, label: str, origins: Mapping[str, str] | None = None) -> Spec:
    """Validate raw data into a :class:`Spec`, turning pydantic errors into :class:`SpecError`."""
    version = data.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError(
            f"{label}: version = {version!r} is not supported (this vmforge reads version {SPEC_VERSION})",
            hint=f"set version = {SPEC_VERSION}, or upgrade vmforge",
        )
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_describe(error, data, label, origins or {}) for error in exc.errors()]
        message = problems[0]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        raise SpecError(message, hint=SPEC_HINT, problems=problems) from None


def _describe(error: Any, data: Mapping[str, Any], label: str, origins: Mapping[str, str]) -> str:
    loc = [str(part) for part in error["loc"]]
    dotted = ".".join(loc)
    where = origins.get(dotted, label)
    if error["type"] == "extra_forbidden":
        suggestion = _suggest(loc)
        tail = f"; did you mean '{suggestion}'?" if suggestion else ""
        return f"{where}: unknown key '{dotted}'{tail}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "missing":
        return f"{where}: '{dotted}' is required"
    if not loc:
        return f"{where}: {message}"
    value = error.get("input")
    shown = _show_value(dotted, value)
    return f"{where}: {dotted} = {shown}: {message}"


def _show_value(dotted: str, value: object) -> str:
    if "password" in dotted or "secret" in dotted or "key" in dotted.rsplit(".", 1)[-1]:
        return "'********'"
    if isinstance(value, dict):
        return "{…}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _suggest(loc: list[str]) -> str | None:
    """'did you mean' for an unknown key: the closest field name at the same place."""
    model: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        if model is None or part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            model = inner[0]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = None
    if model is None:
        return None
    matches = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    if not matches:
        return None
    return ".".join([*loc[:-1], matches[0]])


def iter_fields(model: type[BaseModel] = Spec, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf field as (dotted name, FieldInfo); drives the reference docs and tests."""
    out: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(iter_fields(annotation, f"{prefix}{name}."))
        elif inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel) and name == "packages":
            out.extend(iter_fields(inner[0], f"{prefix}{name}[]."))
        else:
            out.append((f"{prefix}{name}", field))
    return out
