"""Answer files (autounattend.xml) rendered from the templates in ``answer-files/``.

Everything a template sees is decided here from the spec, the plan and the ISO inspection:
the image (checked against the ISO), the key (the spec's, or the edition's generic key), the
disk layout for the firmware, the Windows 11 hardware-check bypass, the obfuscated passwords,
and the commands that write phase markers and start the bootstrap script from the answer media.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from vmforge.errors import SpecError, VmforgeError
from vmforge.logs import register_secret
from vmforge.media import phases
from vmforge.media.editions import KEY_RE, generic_key, key_owner, normalise_edition
from vmforge.media.family import is_server
from vmforge.media.iso_inspect import IsoInspection
from vmforge.media.wim import WimImage
from vmforge.plan import Plan
from vmforge.resources import DataFolder
from vmforge.spec import Firmware, Toggle, WindowsFamily, WindowsSection
from vmforge.templating import render_template
from vmforge.units import format_size

ANSWER_DIR = "vmforge"  # folder on the answer media holding the bootstrap script
BOOTSTRAP_SCRIPT = "bootstrap.ps1"
WIN11_MIN_DISK = 64 * 1024**3
WIN11_MIN_MEMORY = 4 * 1024**3
WIN11_MIN_VCPUS = 2
RECOVERY_TYPE_ID = "de94bba4-06d1-4d40-a16a-bfd50179d6ac"
SERVER_FAMILIES = frozenset({WindowsFamily.S2016, WindowsFamily.S2019, WindowsFamily.S2022, WindowsFamily.S2025})
TEMPLATES = {
    WindowsFamily.W7: "windows-7.xml.j2",
    WindowsFamily.W81: "windows-10.xml.j2",
    WindowsFamily.W10: "windows-10.xml.j2",
    WindowsFamily.W11: "windows-11.xml.j2",
    **dict.fromkeys(SERVER_FAMILIES, "windows-server.xml.j2"),
}
LAB_CONFIG = r"reg.exe add HKLM\SYSTEM\Setup\LabConfig /v {value} /t REG_DWORD /d 1 /f"
LAB_BYPASSES = ("BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassCPUCheck", "BypassStorageCheck")
BYPASS_NRO = r"reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\OOBE /v BypassNRO /t REG_DWORD /d 1 /f"
BOOTSTRAP_COMMAND = (
    "powershell.exe -NoProfile -ExecutionPolicy Bypass -Command "
    "\"$d = Get-PSDrive -PSProvider FileSystem | Where-Object {{ Test-Path (Join-Path $_.Root '{path}') }} "
    "| Select-Object -First 1; if ($d) {{ & (Join-Path $d.Root '{path}') }} "
    "else {{ cmd.exe /c '>COM1 echo VMFORGE-PHASE postinstall-failed reason=no-answer-media' }}\""
)


@dataclass(frozen=True)
class Command:
    path: str
    description: str


@dataclass(frozen=True)
class RenderedAnswer:
    text: str
    template: str
    image: WimImage
    product_key: str | None
    hardware_bypass: bool


def obfuscate_password(password: str, suffix: str) -> str:
    """Setup's 'PlainText=false' form: base64(UTF-16LE(password + suffix)).  Not encryption."""
    return base64.b64encode((password + suffix).encode("utf-16-le")).decode("ascii")


def select_image(windows: WindowsSection, inspection: IsoInspection) -> WimImage:
    """The spec's edition (by name or index), or the default: Pro, or Standard (or the first) with a desktop."""
    if windows.edition is not None:
        image = inspection.find_image(windows.edition)
        if image is None:
            available = "; ".join(f"{i.index}: {i.name}" for i in inspection.images)
            raise SpecError(
                f"windows.edition = {windows.edition!r} is not in {inspection.path.name} (it holds {available})",
                hint="set windows.edition to one of these names or indexes",
            )
        return image
    preferred = "ServerStandard" if is_server(inspection.images[0]) else "Professional"
    full = [i for i in inspection.images if i.installation_type != "Server Core"] or list(inspection.images)
    return next((i for i in full if normalise_edition(i.edition_id) == preferred), full[0])


def choose_product_key(windows: WindowsSection, family: WindowsFamily, image: WimImage) -> str | None:
    if windows.product_key is None:
        return generic_key(family, image.edition_id)
    key = windows.product_key.strip().upper()
    if not KEY_RE.match(key):
        raise SpecError(
            "windows.product_key is not a product key (five groups of five letters/digits)",
            hint="write it as XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, or remove it to use the generic key",
        )
    owners = key_owner(key)
    mine = normalise_edition(image.edition_id)
    if owners and not any(edition == mine for _family, edition in owners):
        family_name, edition = owners[0]
        raise SpecError(
            f"windows.product_key is the generic key of {edition} (Windows {family_name.value}), "
            f"but the edition to install is {image.edition_id} ('{image.name}')",
            hint="remove windows.product_key (vmforge uses the matching generic key) or pick that edition",
        )
    return key


def hardware_bypass(windows: WindowsSection, plan: Plan) -> bool:
    if plan.family is not WindowsFamily.W11 or windows.hardware_bypass is Toggle.OFF:
        return False
    if windows.hardware_bypass is Toggle.ON:
        return True
    return not plan.tpm or plan.firmware is not Firmware.UEFI_SECURE


def check_windows11_minimums(plan: Plan, bypass: bool) -> None:
    if plan.family is not WindowsFamily.W11 or bypass:
        return
    problems = []
    if plan.disk.size < WIN11_MIN_DISK:
        problems.append(f"disk.size = {format_size(plan.disk.size)} (needs 64GiB)")
    if plan.memory < WIN11_MIN_MEMORY:
        problems.append(f"vm.memory = {format_size(plan.memory)} (needs 4GiB)")
    if plan.vcpus < WIN11_MIN_VCPUS:
        problems.append(f"vm.vcpus = {plan.vcpus} (needs 2)")
    if problems:
        raise SpecError(
            f"Windows 11 Setup refuses this VM: {'; '.join(problems)}",
            hint="raise the values, or set windows.hardware_bypass = 'on' to skip Setup's checks",
        )


@dataclass(frozen=True)
class Partition:
    type: str  # EFI, MSR, Primary
    size: int | None = None  # MB; None extends to the end of the disk
    format: str | None = None
    label: str | None = None
    letter: str | None = None
    type_id: str | None = None
    active: bool = False


def partitions(plan: Plan, recovery: bool) -> list[Partition]:
    """UEFI: EFI, MSR, (recovery), Windows.  BIOS: one active NTFS partition."""
    if plan.firmware is Firmware.BIOS:
        return [Partition("Primary", None, "NTFS", "Windows", "C", active=True)]
    layout = [Partition("EFI", 260, "FAT32", "System"), Partition("MSR", 16)]
    if recovery:
        layout.append(Partition("Primary", 1024, "NTFS", "Recovery", type_id=RECOVERY_TYPE_ID))
    layout.append(Partition("Primary", None, "NTFS", "Windows", "C"))
    return layout


def _check_ascii(windows: WindowsSection, password: str) -> None:
    for field_name, value in (("windows.admin_user", windows.admin_user), ("windows.password", password)):
        if not value.isascii() or not value.isprintable():
            raise SpecError(
                f"{field_name} has non-ASCII or control characters",
                hint="Windows Setup reads answer files reliably only in ASCII: use ASCII letters, digits, symbols",
            )
    if (
        not windows.admin_user
        or len(windows.admin_user) > 20
        or any(c in windows.admin_user for c in '"/\\[]:;|=,+*?<>@')
    ):
        raise SpecError(
            f"windows.admin_user = {windows.admin_user!r} is not a valid Windows user name",
            hint="use up to 20 letters, digits, '-', '_' or '.'",
        )


def answer_context(windows: WindowsSection, plan: Plan, inspection: IsoInspection, password: str) -> dict[str, Any]:
    register_secret(password)
    _check_ascii(windows, password)
    if plan.family is None:
        raise VmforgeError("answer files are for Windows specs", hint="set os = 'windows'")
    image = select_image(windows, inspection)
    if image.arch not in ("amd64", "x86", "arm64"):
        raise VmforgeError(
            f"image {image.index} '{image.name}' has no architecture vmforge can install ({image.arch})",
            hint="use an x64, x86 or arm64 installer ISO",
        )
    key = choose_product_key(windows, plan.family, image)
    bypass = hardware_bypass(windows, plan)
    check_windows11_minimums(plan, bypass)
    server = plan.family in SERVER_FAMILIES
    layout = partitions(plan, windows.recovery_partition and plan.firmware is not Firmware.BIOS)
    pe_commands = [Command(phases.cmd_marker_command(phases.PE_START), "vmforge: report WinPE start")]
    if bypass:
        pe_commands += [Command(LAB_CONFIG.format(value=v), f"Windows 11 hardware check: {v}") for v in LAB_BYPASSES]
    specialize_commands = [Command(phases.cmd_marker_command(phases.SPECIALIZE), "vmforge: report specialize")]
    if plan.family is WindowsFamily.W11:
        specialize_commands.append(Command(BYPASS_NRO, "OOBE without a network connection"))
    script = f"{ANSWER_DIR}\\{BOOTSTRAP_SCRIPT}"
    first_logon = [
        Command(phases.cmd_marker_command(phases.FIRSTLOGON), "vmforge: report first logon"),
        Command(BOOTSTRAP_COMMAND.format(path=script), "vmforge: run the bootstrap script from the answer media"),
    ]
    return {
        "template_name": TEMPLATES[plan.family],
        "arch": image.arch,
        "build": image.build or 0,
        "family": plan.family.value,
        "image": {
            "index": image.index,
            "name": image.name,
            "select_by": "NAME" if server else "INDEX",
            "select_value": image.name if server else str(image.index),
        },
        "product_key": key,
        "locale": windows.locale,
        "keyboard": windows.keyboard,
        "timezone": windows.timezone,
        "computer_name": plan.computer_name or "VMFORGE",
        "admin_user": windows.admin_user,
        "password_obfuscated": obfuscate_password(password, "Password"),
        "administrator_password_obfuscated": obfuscate_password(password, "AdministratorPassword"),
        "partitions": layout,
        "windows_partition": len(layout),
        "windows_pe_commands": pe_commands,
        "specialize_commands": specialize_commands,
        "first_logon": first_logon,
        "hardware_bypass": bypass,
    }


def render_answer(windows: WindowsSection, plan: Plan, inspection: IsoInspection, password: str) -> RenderedAnswer:
    context = answer_context(windows, plan, inspection, password)
    text = render_template(context["template_name"], DataFolder.ANSWER_FILES, **context)
    image = select_image(windows, inspection)
    return RenderedAnswer(text, context["template_name"], image, context["product_key"], context["hardware_bypass"])
