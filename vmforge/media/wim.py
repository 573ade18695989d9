"""Read a WIM or ESD file's header and XML metadata, and nothing else.

A WIM starts with a 208-byte header (``MSWIM\\0\\0\\0``) whose resource header ``rhXmlData``
gives the offset and size of the XML metadata: UTF-16LE text, stored uncompressed even in
solid (ESD) archives.  The XML lists every image with its name and Windows properties.
Reading both costs two small reads however large the file is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

from vmforge.errors import VmforgeError

WIM_MAGIC = b"MSWIM\x00\x00\x00"
PIPABLE_MAGIC = b"WLPWM\x00\x00\x00"
HEADER_SIZE = 208
XML_RESHDR_OFFSET = 72
MAX_XML_SIZE = 64 * 1024**2  # real install.wim XML is tens of KiB
RESHDR_FLAG_COMPRESSED = 0x04

# WINDOWS/ARCH values (PROCESSOR_ARCHITECTURE_*) -> the names answer files use.
ARCH_NAMES = {0: "x86", 5: "arm", 6: "ia64", 9: "amd64", 12: "arm64"}


@dataclass(frozen=True)
class WimImage:
    index: int
    name: str
    description: str = ""
    flags: str = ""
    edition_id: str = ""
    arch: str | None = None  # 'amd64', 'x86', 'arm64' or None when the XML does not say
    product_name: str = ""
    installation_type: str = ""  # 'Client', 'Server', 'Server Core'
    major: int | None = None
    minor: int | None = None
    build: int | None = None
    spbuild: int | None = None
    languages: tuple[str, ...] = ()
    default_language: str | None = None

    @property
    def version(self) -> str | None:
        if self.major is None:
            return None
        parts = [self.major, self.minor or 0, self.build or 0]
        if self.spbuild is not None:
            parts.append(self.spbuild)
        return ".".join(str(p) for p in parts)


@dataclass(frozen=True)
class WimInfo:
    version: int
    flags: int
    image_count: int
    boot_index: int
    part_number: int
    total_parts: int
    images: tuple[WimImage, ...] = field(default=())


def read_wim_info(stream: BinaryIO, label: str) -> WimInfo:
    """Parse the header and XML of the WIM/ESD open as ``stream``; ``label`` names it in errors."""
    stream.seek(0)
    header = stream.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        raise VmforgeError(
            f"{label}: truncated WIM header ({len(header)} of {HEADER_SIZE} bytes)",
            hint="the file is damaged or incomplete; download the ISO again",
        )
    magic = header[:8]
    if magic == PIPABLE_MAGIC:
        raise VmforgeError(
            f"{label}: pipable WIM files are not supported", hint="use the ISO's original install.wim/esd"
        )
    if magic != WIM_MAGIC:
        raise VmforgeError(
            f"{label}: not a WIM file (magic {magic!r})",
            hint="the file is damaged, or the ISO is not a Windows installer",
        )
    (cb_size, version, flags, _chunk) = struct.unpack_from("<IIII", header, 8)
    if cb_size != HEADER_SIZE:
        raise VmforgeError(f"{label}: corrupt WIM header (size field {cb_size})", hint="download the ISO again")
    part_number, total_parts, image_count = struct.unpack_from("<HHI", header, 40)
    size_flags, xml_offset, xml_original = struct.unpack_from("<QQQ", header, XML_RESHDR_OFFSET)
    xml_size = size_flags & 0x00FF_FFFF_FFFF_FFFF
    res_flags = size_flags >> 56
    (boot_index,) = struct.unpack_from("<I", header, 120)
    if res_flags & RESHDR_FLAG_COMPRESSED:
        raise VmforgeError(f"{label}: the WIM's XML metadata is compressed", hint="this is not a Windows install image")
    if xml_size == 0 or xml_size > MAX_XML_SIZE or xml_size != xml_original:
        raise VmforgeError(f"{label}: corrupt WIM header (XML metadata size {xml_size})", hint="download the ISO again")
    stream.seek(xml_offset)
    raw = stream.read(xml_size)
    if len(raw) != xml_size:
        raise VmforgeError(
            f"{label}: truncated WIM (XML metadata at {xml_offset} needs {xml_size} bytes, got {len(raw)})",
            hint="the file is damaged or incomplete; download the ISO again",
        )
    images = parse_wim_xml(raw, label)
    if len(images) != image_count:
        raise VmforgeError(
            f"{label}: header says {image_count} images, XML metadata lists {len(images)}",
            hint="the WIM is damaged; download the ISO again",
        )
    return WimInfo(version, flags, image_count, boot_index, part_number, total_parts, images)


def parse_wim_xml(raw: bytes, label: str) -> tuple[WimImage, ...]:
    try:
        text = raw.decode("utf-16-le").lstrip("\ufeff")
        root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    except (UnicodeDecodeError, etree.XMLSyntaxError) as exc:
        raise VmforgeError(f"{label}: WIM XML metadata is unreadable ({exc})", hint="download the ISO again") from None
    if root.tag != "WIM":
        raise VmforgeError(f"{label}: WIM XML metadata has root <{root.tag}>", hint="download the ISO again")
    images = [_image(node, label) for node in root.iterfind("IMAGE")]
    return tuple(sorted(images, key=lambda i: i.index))


def _text(node: etree._Element, path: str) -> str:
    found = node.find(path)
    return (found.text or "").strip() if found is not None else ""


def _int(node: etree._Element, path: str) -> int | None:
    text = _text(node, path)
    if not text:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _image(node: etree._Element, label: str) -> WimImage:
    try:
        index = int(node.get("INDEX", ""))
    except ValueError:
        raise VmforgeError(f"{label}: an IMAGE in the WIM XML has no INDEX", hint="download the ISO again") from None
    arch_code = _int(node, "WINDOWS/ARCH")
    languages = tuple(
        (lang.text or "").strip() for lang in node.iterfind("WINDOWS/LANGUAGES/LANGUAGE") if (lang.text or "").strip()
    )
    return WimImage(
        index=index,
        name=_text(node, "NAME"),
        description=_text(node, "DESCRIPTION"),
        flags=_text(node, "FLAGS"),
        edition_id=_text(node, "WINDOWS/EDITIONID"),
        arch=ARCH_NAMES.get(arch_code) if arch_code is not None else None,
        product_name=_text(node, "WINDOWS/PRODUCTNAME"),
        installation_type=_text(node, "WINDOWS/INSTALLATIONTYPE"),
        major=_int(node, "WINDOWS/VERSION/MAJOR"),
        minor=_int(node, "WINDOWS/VERSION/MINOR"),
        build=_int(node, "WINDOWS/VERSION/BUILD"),
        spbuild=_int(node, "WINDOWS/VERSION/SPBUILD"),
        languages=languages,
        default_language=_text(node, "WINDOWS/LANGUAGES/DEFAULT") or None,
    )
