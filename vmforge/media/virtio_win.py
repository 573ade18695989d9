"""Drivers for Windows Setup, read straight from the virtio-win ISO (pycdlib, no mounting).

The virtio-win ISO lays drivers out as ``<driver>/<os>/<arch>/`` (e.g. ``viostor/w11/amd64``).
Setup loads every driver below a ``$WinPEDriver$`` folder at the root of any media it sees,
so the answer media carries a copy of the few that Setup needs: storage (viostor, vioscsi) to
see the disk and NetKVM for the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmforge.errors import VmforgeError
from vmforge.media.isofs import open_iso
from vmforge.spec import WindowsFamily

WINPE_DRIVERS = ("viostor", "vioscsi", "NetKVM")
# Folder names per family, best first (newer sets may lack an exact match for the newest OS).
OS_DIRS = {
    WindowsFamily.W7: ("w7",),
    WindowsFamily.W81: ("w8.1",),
    WindowsFamily.W10: ("w10",),
    WindowsFamily.W11: ("w11", "w10"),
    WindowsFamily.S2016: ("2k16",),
    WindowsFamily.S2019: ("2k19",),
    WindowsFamily.S2022: ("2k22",),
    WindowsFamily.S2025: ("2k25", "2k22"),
}
ARCH_DIRS = {"amd64": "amd64", "x86": "x86", "arm64": "ARM64"}
MAX_DRIVER_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class DriverFile:
    driver: str
    source: str  # path in the virtio-win ISO
    relative: str  # path below the driver's folder
    data: bytes


def winpe_drivers(
    iso: Path, family: WindowsFamily, arch: str, drivers: tuple[str, ...] = WINPE_DRIVERS
) -> list[DriverFile]:
    """Every file of ``drivers`` for ``family``/``arch``; an error names what is missing."""
    if not iso.is_file():
        raise VmforgeError(
            f"virtio_win.iso {iso} does not exist", hint="download virtio-win.iso and set virtio_win.iso"
        )
    arch_dir = ARCH_DIRS.get(arch)
    if arch_dir is None:
        raise VmforgeError(f"no virtio-win drivers for architecture {arch}", hint="use an amd64 or x86 installer ISO")
    files: list[DriverFile] = []
    total = 0
    with open_iso(iso) as fs:
        for driver in drivers:
            found = None
            for os_dir in OS_DIRS[family]:
                found = fs.walk_files(f"/{driver}/{os_dir}/{arch_dir}")
                if found:
                    source_dir = f"{driver}/{os_dir}/{arch_dir}"
                    break
            if not found:
                raise VmforgeError(
                    f"{iso.name} has no {driver} driver for Windows {family.value} {arch} "
                    f"(looked in {', '.join(f'{driver}/{d}/{arch_dir}' for d in OS_DIRS[family])})",
                    hint="use a virtio-win ISO that supports this Windows version (a newer release)",
                )
            for relative, handle in found:
                data = fs.read(handle)
                total += len(data)
                if total > MAX_DRIVER_BYTES:
                    raise VmforgeError(f"{iso.name}: drivers exceed {MAX_DRIVER_BYTES >> 20} MiB", hint="check the ISO")
                files.append(DriverFile(driver, f"{source_dir}/{relative}", relative, data))
    return files
