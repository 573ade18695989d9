"""Finding the PVH-bootable vmlinux inside a bzImage (vmforge/probe/kernel.py)."""

from __future__ import annotations

import gzip
import lzma
import struct

from vmforge.probe.kernel import XEN_ELFNOTE_PHYS32_ENTRY, elf_notes, has_pvh_entry, pvh_vmlinux


def note(name: bytes, kind: int, desc: bytes) -> bytes:
    named = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(named), len(desc), kind) + pad(named) + pad(desc)


def elf64(notes: bytes) -> bytes:
    """A minimal little-endian ELF64 with one PT_NOTE program header."""
    ehsize, phentsize = 64, 56
    header = bytearray(ehsize)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, ehsize)  # e_phoff
    struct.pack_into("<HH", header, 0x36, phentsize, 1)  # e_phentsize, e_phnum
    offset = ehsize + phentsize
    phdr = struct.pack("<IIQQQQQQ", 4, 0, offset, 0, 0, len(notes), len(notes), 4)
    return bytes(header) + phdr + notes


PVH = elf64(note(b"Xen", 6, b"linux\0") + note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, b"\x00\x10\x00\x01"))
NOT_PVH = elf64(note(b"Xen", 6, b"linux\0") + note(b"GNU", 3, b"\x01\x02"))


def test_notes_are_read_from_the_note_segment() -> None:
    assert [(n, k) for n, k, _ in elf_notes(PVH)] == [(b"Xen", 6), (b"Xen", XEN_ELFNOTE_PHYS32_ENTRY)]
    assert has_pvh_entry(PVH) and not has_pvh_entry(NOT_PVH)
    assert elf_notes(b"MZ not an elf") == []


def test_the_xz_or_gzip_payload_of_a_bzimage_is_found() -> None:
    setup = b"MZ" + b"\0" * 500 + b"HdrS"  # the bzImage's real-mode part, then the compressed payload
    assert pvh_vmlinux(setup + lzma.compress(PVH, format=lzma.FORMAT_XZ) + b"\0trailer") == PVH
    assert pvh_vmlinux(setup + gzip.compress(PVH)) == PVH


def test_a_kernel_without_pvh_entry_or_payload_stays_a_bzimage() -> None:
    assert pvh_vmlinux(b"MZ" + lzma.compress(NOT_PVH, format=lzma.FORMAT_XZ)) is None
    assert pvh_vmlinux(b"MZ" + b"\xfd7zXZ\x00garbage") is None
    assert pvh_vmlinux(b"no payload at all") is None
