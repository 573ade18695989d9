"""What the libvirt daemon says it can do (``getDomainCapabilities``), and firmware choice.

OVMF paths are never hard-coded: the loader is picked from the capabilities' loader list, and
its NVRAM vars template from the QEMU firmware descriptors (docs/interop/firmware.json) that
libvirt reads too.  Where the descriptors are not readable from here (a remote host), the
template is left to libvirt, which fills it in from the same descriptors when the VM starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from vmforge.errors import VmforgeError
from vmforge.libvirt_conn import libvirt_errors

# Where QEMU firmware descriptors live (the same search path libvirt uses, system dirs only).
DESCRIPTOR_DIRS = (Path("/etc/qemu/firmware"), Path("/usr/share/qemu/firmware"))
MACHINE = "q35"
OVMF_HINT = "install OVMF on the libvirt host (Debian: apt-get install ovmf) and restart libvirtd"


@dataclass(frozen=True)
class DomainCaps:
    machine: str  # the versioned machine type, e.g. pc-q35-7.2
    loaders: tuple[str, ...]
    secure_boot: bool  # loader 'secure' enum offers 'yes'
    efi: bool  # 'efi' firmware autoselection offered (OVMF descriptors present)
    tpm_emulator: bool  # TPM backend 'emulator' (swtpm) usable
    cpu_modes: tuple[str, ...]  # supported modes


def parse_domcaps(xml: str) -> DomainCaps:
    root = etree.fromstring(xml.encode())

    def values(path: str) -> tuple[str, ...]:
        return tuple(str(v.text) for v in root.findall(path) if v.text)

    tpm = root.find("devices/tpm")
    tpm_ok = (
        tpm is not None
        and tpm.get("supported") == "yes"
        and "emulator" in values("devices/tpm/enum[@name='backendModel']/value")
    )
    return DomainCaps(
        machine=str(root.findtext("machine") or MACHINE),
        loaders=values("os/loader/value"),
        secure_boot="yes" in values("os/loader/enum[@name='secure']/value"),
        efi="efi" in values("os/enum[@name='firmware']/value"),
        tpm_emulator=tpm_ok,
        cpu_modes=tuple(str(m.get("name")) for m in root.findall("cpu/mode") if m.get("supported") == "yes"),
    )


def fetch_domcaps(conn: Any, virt_type: str) -> DomainCaps:
    with libvirt_errors(f"reading the domain capabilities ({virt_type}, {MACHINE})"):
        xml = conn.getDomainCapabilities(None, "x86_64", MACHINE, virt_type, 0)
    return parse_domcaps(str(xml))


def choose_loader(caps: DomainCaps, secure: bool) -> str:
    """The OVMF code image: with secure boot (Microsoft keys preferred) or without; 4 MiB builds first."""

    def rank(path: str) -> tuple[int, int]:
        name = Path(path).name.lower()
        is_secure = any(tag in name for tag in ("secboot", ".ms.", "secure", "snakeoil"))
        if is_secure != secure:
            return (99, 0)
        # With secure boot the Microsoft-keys build (.ms.) first: Windows needs those keys.
        kind = (0 if ".ms." in name else 1) if secure else 0
        return (kind, 0 if "4m" in name else 1)

    candidates = sorted((rank(p), p) for p in caps.loaders)
    candidates = [(r, p) for r, p in candidates if r[0] < 99]
    if not candidates:
        what = "secure-boot OVMF (e.g. OVMF_CODE_4M.ms.fd)" if secure else "OVMF without secure boot"
        raise VmforgeError(f"the libvirt host offers no {what} for {MACHINE}", hint=OVMF_HINT)
    return candidates[0][1]


def vars_template(loader: str, secure: bool, dirs: Sequence[Path] = DESCRIPTOR_DIRS) -> str | None:
    """The NVRAM template paired with ``loader`` in the firmware descriptors; with secure boot the
    one with Microsoft keys enrolled.  None when no descriptor here names the loader."""
    best: tuple[int, str] | None = None
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                mapping = data["mapping"]
                executable = mapping["executable"]["filename"]
                template = mapping["nvram-template"]["filename"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if executable != loader:
                continue
            features = set(data.get("features", ()))
            score = 0
            if secure:
                score += 0 if "enrolled-keys" in features else 10
                score += 0 if "secure-boot" in features else 10
            else:
                score += 10 if "secure-boot" in features else 0
            if best is None or score < best[0]:
                best = (score, str(template))
    return best[1] if best else None


def check_tpm(caps: DomainCaps) -> None:
    if not caps.tpm_emulator:
        raise VmforgeError(
            "the libvirt host cannot emulate a TPM (no swtpm backend in its domain capabilities)",
            hint="install swtpm and swtpm-tools on the libvirt host (Debian) and restart libvirtd, "
            "or set vm.tpm = 'off'",
        )
