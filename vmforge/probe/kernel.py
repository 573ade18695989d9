"""The probe kernel as QEMU boots it fastest: the uncompressed ``vmlinux`` through PVH entry.

Debian's ``vmlinuz`` is a bzImage whose payload is XZ-compressed; under TCG the kernel's own
decompressor spends several seconds unpacking ~60 MiB before the first kernel message (measured
~4-5 s of a 13-16 s boot on this 2-core host).  Debian builds with ``CONFIG_PVH=y``, so the
payload is an ELF ``vmlinux`` carrying the Xen ``PHYS32_ENTRY`` note, and QEMU's ``-kernel``
(libvirt ``<kernel>``) boots such an ELF directly, with the initramfs, skipping the decompressor.

:func:`pvh_vmlinux` finds the compressed payload inside the bzImage (by its magic), decompresses
it with the standard library and checks the PVH note; when anything does not fit (another
compression, no PVH note) it returns None and the image keeps the bzImage.
"""

from __future__ import annotations

import contextlib
import lzma
import struct
import zlib

XEN_ELFNOTE_PHYS32_ENTRY = 18
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b\x08"
_ELF64 = b"\x7fELF\x02\x01"
PT_NOTE = 4


def _payloads(bzimage: bytes) -> list[bytes]:
    """Every decompressable stream that starts at an XZ or gzip magic (first match of each)."""
    found = []
    at = bzimage.find(_XZ_MAGIC)
    if at >= 0:
        with contextlib.suppress(lzma.LZMAError):
            found.append(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[at:]))
    at = bzimage.find(_GZIP_MAGIC)
    if at >= 0:
        with contextlib.suppress(zlib.error):
            found.append(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[at:]))
    return found


def elf_notes(elf: bytes) -> list[tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of every note in the PT_NOTE segments of a little-endian ELF64."""
    if not elf.startswith(_ELF64):
        return []
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    notes = []
    for index in range(phnum):
        p_type, _flags, offset, _vaddr, _paddr, size = struct.unpack_from("<IIQQQQ", elf, phoff + index * phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = offset, offset + size
        while pos + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, pos)
            name_at = pos + 12
            desc_at = name_at + ((namesz + 3) & ~3)
            notes.append((elf[name_at : name_at + namesz].rstrip(b"\0"), note_type, elf[desc_at : desc_at + descsz]))
            pos = desc_at + ((descsz + 3) & ~3)
    return notes


def has_pvh_entry(elf: bytes) -> bool:
    return any(name == b"Xen" and kind == XEN_ELFNOTE_PHYS32_ENTRY for name, kind, _ in elf_notes(elf))


def pvh_vmlinux(bzimage: bytes) -> bytes | None:
    """The bzImage's uncompressed ELF kernel when it can boot through PVH, else None."""
    for payload in _payloads(bzimage):
        if has_pvh_entry(payload):
            return payload
    return None
