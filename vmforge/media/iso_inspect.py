"""Inspect a Windows installer ISO: volume id, boot records, install images, family.

pycdlib parses the ISO's descriptors and directories (UDF first: real Windows ISOs keep their
files only in UDF; then Joliet, then plain ISO9660).  Only the WIM header and XML metadata of
``sources/install.wim|esd`` (and ``boot.wim``) are read, so inspection takes milliseconds
whatever the ISO's size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pycdlib

from vmforge.errors import VmforgeError
from vmforge.media.checksum import file_sha256, verify_sha256
from vmforge.media.family import image_family, is_server
from vmforge.media.isofs import open_iso
from vmforge.media.wim import WimImage, WimInfo, read_wim_info
from vmforge.plan import MediaFacts
from vmforge.spec import WindowsFamily

PLATFORM_BIOS = 0x00
PLATFORM_EFI = 0xEF
INSTALL_NAMES = ("install.wim", "install.esd", "install.swm")


@dataclass(frozen=True)
class IsoInspection:
    path: Path
    volume_id: str
    publisher: str
    filesystems: tuple[str, ...]
    boot: tuple[str, ...]  # 'bios', 'uefi'
    install_file: str  # path inside the ISO, e.g. /sources/install.wim
    install_format: str  # 'wim' or 'esd'
    images: tuple[WimImage, ...]
    boot_wim_images: int | None
    family: WindowsFamily
    arches: tuple[str, ...] = field(default=())
    iso_sha256: str | None = None

    def image(self, index: int) -> WimImage | None:
        return next((i for i in self.images if i.index == index), None)

    def find_image(self, edition: str | int) -> WimImage | None:
        """By index, or by NAME (case-insensitive), as Setup's /IMAGE/INDEX and /IMAGE/NAME do."""
        if isinstance(edition, int) or (isinstance(edition, str) and edition.isdigit()):
            return self.image(int(edition))
        wanted = edition.casefold()
        return next((i for i in self.images if i.name.casefold() == wanted), None)

    def media_facts(self) -> MediaFacts:
        return MediaFacts(family=self.family, iso_sha256=self.iso_sha256)

    def to_data(self) -> dict[str, Any]:
        images = []
        for image in self.images:
            item = asdict(image)
            item["languages"] = list(image.languages)
            item["version"] = image.version
            item["family"] = fam.value if (fam := image_family(image)) else None
            item["server"] = is_server(image)
            images.append(item)
        return {
            "path": str(self.path),
            "volume_id": self.volume_id,
            "publisher": self.publisher,
            "filesystems": list(self.filesystems),
            "boot": list(self.boot),
            "family": self.family.value,
            "arches": list(self.arches),
            "install_file": self.install_file,
            "install_format": self.install_format,
            "boot_wim_images": self.boot_wim_images,
            "iso_sha256": self.iso_sha256,
            "images": images,
        }


def inspect_iso(path: Path) -> IsoInspection:
    label = str(path)
    if not path.is_file():
        raise VmforgeError(f"ISO {path} does not exist", hint="check windows.iso / the path given")
    with open_iso(path) as fs:
        iso = fs.iso
        install_path = fs.find("/sources", INSTALL_NAMES)
        if install_path is None:
            raise VmforgeError(
                f"{label}: no sources/install.wim or install.esd (volume '{_volume_id(iso)}')",
                hint="this is not a Windows installer ISO; use the ISO from Microsoft",
            )
        if install_path.lower().endswith(".swm"):
            raise VmforgeError(
                f"{label}: split install images (install.swm) are not supported",
                hint="use an ISO with a single sources/install.wim or install.esd",
            )
        with fs.open(install_path) as stream:
            info = read_wim_info(stream, f"{label}:{install_path}")
        boot_images: int | None = None
        boot_path = fs.find("/sources", ("boot.wim",))
        if boot_path is not None:
            with fs.open(boot_path) as stream:
                boot_images = read_wim_info(stream, f"{label}:{boot_path}").image_count
        volume_id = _volume_id(iso)
        publisher = _publisher(iso)
        boot = _boot_records(iso)
        filesystems = fs.filesystems
    family = _family(info, label)
    arches = tuple(sorted({i.arch for i in info.images if i.arch}))
    return IsoInspection(
        path=path,
        volume_id=volume_id,
        publisher=publisher,
        filesystems=filesystems,
        boot=boot,
        install_file=install_path,
        install_format="esd" if install_path.lower().endswith(".esd") else "wim",
        images=info.images,
        boot_wim_images=boot_images,
        family=family,
        arches=arches,
    )


def _volume_id(iso: pycdlib.PyCdlib) -> str:
    raw: bytes = iso.pvd.volume_identifier
    return raw.decode("latin-1").strip(" \x00")


def _publisher(iso: pycdlib.PyCdlib) -> str:
    try:
        raw: bytes = iso.pvd.publisher_identifier.text
    except AttributeError:
        return ""
    return raw.decode("latin-1").strip(" \x00")


def _boot_records(iso: pycdlib.PyCdlib) -> tuple[str, ...]:
    catalog = iso.eltorito_boot_catalog
    if catalog is None:
        return ()
    platforms = {catalog.validation_entry.platform_id}
    platforms.update(section.platform_id for section in catalog.sections)
    boot = []
    if PLATFORM_BIOS in platforms:
        boot.append("bios")
    if PLATFORM_EFI in platforms:
        boot.append("uefi")
    return tuple(boot)


def _family(info: WimInfo, label: str) -> WindowsFamily:
    families = {image_family(i) for i in info.images}
    if None in families or not families:
        unknown = next((i for i in info.images if image_family(i) is None), None)
        detail = (
            f"image {unknown.index} '{unknown.name}' is version {unknown.version or 'unknown'} "
            f"({unknown.installation_type or 'no installation type'})"
            if unknown
            else "no images"
        )
        raise VmforgeError(
            f"{label}: not a Windows version vmforge supports: {detail}",
            hint="vmforge installs Windows 7, 8.1, 10, 11 and Server 2016-2025",
        )
    if len(families) > 1:
        names = ", ".join(sorted(f.value for f in families if f))
        raise VmforgeError(
            f"{label}: images of several Windows families ({names})",
            hint="use an ISO of one Windows release",
        )
    family = families.pop()
    assert family is not None
    return family


def inspect_spec_iso(iso: Path, expected_sha256: str | None, *, hash_iso: bool = False) -> IsoInspection:
    """Inspect ``iso``; verify (or, with ``hash_iso``, compute) its cached sha256."""
    inspection = inspect_iso(iso)
    if expected_sha256:
        digest = verify_sha256(iso, expected_sha256)
    elif hash_iso:
        digest = file_sha256(iso)
    else:
        return inspection
    return dataclasses.replace(inspection, iso_sha256=digest)
