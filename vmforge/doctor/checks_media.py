"""Windows inputs: the installer ISO (readable, an ISO, sha256 when pinned) and virtio-win."""

from __future__ import annotations

from pathlib import Path

import pycdlib

from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.errors import VmforgeError
from vmforge.media.checksum import file_sha256
from vmforge.media.iso_inspect import IsoInspection, inspect_iso
from vmforge.packages.preflight import preflight_packages
from vmforge.spec import Spec, WindowsFamily

SECTOR = 2048
# Driver folder names on the virtio-win ISO (viostor/<dir>/amd64), per Windows family.
VIRTIO_WIN_DIRS = {
    WindowsFamily.W7: "w7",
    WindowsFamily.W81: "w8.1",
    WindowsFamily.W10: "w10",
    WindowsFamily.W11: "w11",
    WindowsFamily.S2016: "2k16",
    WindowsFamily.S2019: "2k19",
    WindowsFamily.S2022: "2k22",
    WindowsFamily.S2025: "2k25",
}


def volume_kind(path: Path) -> str | None:
    """'iso9660' or 'udf' from the volume descriptors at sector 16; None for anything else."""
    with path.open("rb") as handle:
        handle.seek(16 * SECTOR)
        head = handle.read(SECTOR * 4)
    idents = {head[i * SECTOR + 1 : i * SECTOR + 6] for i in range(len(head) // SECTOR)}
    if b"CD001" in idents:
        return "iso9660"
    if idents & {b"BEA01", b"NSR02", b"NSR03"}:
        return "udf"
    return None


def check_iso(check_id: str, key: str, path: Path | None, required: bool) -> CheckResult:
    if path is None:
        if required:
            return failed(check_id, f"{key} is not set", f"set {key} to the ISO file")
        return skipped(check_id, f"{key} is not set")
    try:
        kind = volume_kind(path)
        size = path.stat().st_size
    except OSError as exc:
        return failed(
            check_id, f"{key} = '{path}' cannot be read: {exc.strerror}", f"fix the path or permissions of {key}"
        )
    if kind is None:
        return failed(check_id, f"{key} = '{path}' holds no ISO 9660 or UDF file system", f"point {key} at the ISO")
    return passed(check_id, f"{key} = '{path}' is readable ({kind}, {size} bytes)")


def check_iso_inspectable(path: Path | None) -> tuple[CheckResult, IsoInspection | None]:
    """Setup's view of the ISO: install.wim/esd found and its image metadata readable."""
    if path is None or not path.is_file():
        return skipped("media.windows-iso-inspect", "no readable windows.iso"), None
    try:
        info = inspect_iso(path)
    except VmforgeError as exc:
        return (
            failed("media.windows-iso-inspect", f"windows.iso cannot be inspected: {exc.message}", exc.hint or ""),
            None,
        )
    images = "; ".join(f"{i.index}: {i.name}" for i in info.images)
    summary = f"Windows {info.family.value} installer ({info.install_file}, boot {'+'.join(info.boot) or 'none'})"
    return passed("media.windows-iso-inspect", summary, f"images: {images}"), info


def check_packages(spec: Spec, inspection: IsoInspection | None) -> CheckResult:
    """The spec's [[packages]]: the same preflight `create` runs (files, hashes, INF, edition)."""
    if not spec.packages:
        return skipped("packages.verify", "the spec lists no [[packages]]")
    try:
        checked = preflight_packages(spec, inspection)
    except VmforgeError as exc:
        return failed("packages.verify", exc.message, exc.hint or "run 'vmforge packages verify NAME' for details")
    names = ", ".join(c.package.name for c in checked)
    warnings = [w for c in checked for w in c.warnings]
    if warnings:
        return warned("packages.verify", f"packages ready with warnings: {names}", "; ".join(warnings), *warnings)
    edition = "" if inspection else " (edition not checked: windows.iso not inspected)"
    return passed("packages.verify", f"packages ready: {names}{edition}")


def check_iso_sha256(path: Path | None, expected: str | None) -> CheckResult:
    if expected is None:
        return skipped("media.windows-iso-sha256", "windows.iso_sha256 is not pinned")
    if path is None or not path.is_file():
        return skipped("media.windows-iso-sha256", "no readable windows.iso")
    actual = file_sha256(path)  # cached by path, size, mtime and inode (shared with the media module)
    if actual != expected:
        return failed(
            "media.windows-iso-sha256",
            f"windows.iso sha256 is {actual}, windows.iso_sha256 pins {expected}",
            "use the ISO the pin belongs to, or update windows.iso_sha256 if the ISO changed on purpose",
        )
    return passed("media.windows-iso-sha256", f"windows.iso matches its pinned sha256 {expected[:16]}…")


def check_virtio_win(path: Path | None, family: WindowsFamily | None) -> CheckResult:
    base = check_iso("media.virtio-win", "virtio_win.iso", path, required=True)
    if base.status.value != "pass" or path is None:
        return base
    if family is None or family is WindowsFamily.AUTO:
        return warned(
            "media.virtio-win",
            "virtio_win.iso is readable; without a known Windows family its drivers cannot be matched",
            "set windows.family (or windows.iso, which is inspected)",
        )
    folder = VIRTIO_WIN_DIRS[family]
    wanted = f"/viostor/{folder}/amd64"
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
        try:
            if iso.has_joliet():
                iso.get_joliet_facade().get_record(wanted)
            elif iso.has_rock_ridge():
                iso.get_rock_ridge_facade().get_record(wanted)
            else:
                iso.get_iso9660_facade().get_record(wanted.upper())
        finally:
            iso.close()
    except pycdlib.pycdlibexception.PyCdlibException:
        return failed(
            "media.virtio-win",
            f"virtio_win.iso has no {wanted}: no storage driver for Windows {family.value}",
            "download a virtio-win ISO new enough for this Windows (fedorapeople.org virtio-win stable)",
        )
    return passed("media.virtio-win", f"virtio_win.iso carries {wanted} (storage driver for Windows {family.value})")
