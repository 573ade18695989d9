"""Read-only, case-insensitive access to files in an ISO through pycdlib, without mounting.

Uses the richest namespace the image has: UDF (real Windows ISOs keep their files only
there), then Joliet, then plain ISO9660.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from vmforge.errors import VmforgeError

_KEYS = {"udf": "udf_path", "joliet": "joliet_path", "iso9660": "iso_path"}


@contextlib.contextmanager
def open_iso(path: Path) -> Iterator[IsoFilesystem]:
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except (PyCdlibException, OSError) as exc:
        raise VmforgeError(
            f"{path} is not a readable ISO image ({exc})",
            hint="check the path; the file may be damaged or not an ISO",
        ) from None
    try:
        yield IsoFilesystem(iso)
    finally:
        with contextlib.suppress(PyCdlibException):
            iso.close()


class IsoFilesystem:
    def __init__(self, iso: pycdlib.PyCdlib) -> None:
        self.iso = iso
        names = []
        if iso.has_udf():
            names.append("udf")
        if iso.has_joliet():
            names.append("joliet")
        names.append("iso9660")
        self.filesystems = tuple(names)
        self._kinds: dict[str, str] = {}  # handle -> namespace it was found in

    def _entries(self, kind: str, directory: str) -> list[tuple[str, bool]]:
        try:
            children = self.iso.list_children(**{_KEYS[kind]: directory})
        except PyCdlibException:
            return []
        entries = []
        for child in children:
            if child is None:
                continue
            raw = child.file_identifier()
            if raw in (b".", b".."):
                continue
            name = raw.decode("utf-16-be") if kind == "joliet" else raw.decode("latin-1")
            entries.append((name, bool(child.is_dir())))
        return entries

    def _resolve_dir(self, kind: str, directory: str) -> str | None:
        current = "/"
        for part in [p for p in directory.split("/") if p]:
            match = next(
                (n for n, is_dir in self._entries(kind, current) if is_dir and n.casefold() == part.casefold()), None
            )
            if match is None:
                return None
            current = f"{current.rstrip('/')}/{match}"
        return current

    def find(self, directory: str, names: tuple[str, ...]) -> str | None:
        """Path (as the ISO spells it) of the first of ``names`` in ``directory``, or None."""
        for kind in self.filesystems:
            resolved = self._resolve_dir(kind, directory)
            if resolved is None:
                continue
            entries = self._entries(kind, resolved)
            for wanted in names:
                for name, is_dir in entries:
                    if not is_dir and name.split(";", 1)[0].casefold() == wanted.casefold():
                        handle = f"{resolved.rstrip('/')}/{name}"
                        self._kinds[handle] = kind
                        return handle
        return None

    def walk_files(self, directory: str) -> list[tuple[str, str]] | None:
        """(path relative to ``directory``, handle) of every file below it; None if it is missing."""
        for kind in self.filesystems:
            resolved = self._resolve_dir(kind, directory)
            if resolved is None:
                continue
            found: list[tuple[str, str]] = []
            stack = [(resolved, "")]
            while stack:
                current, prefix = stack.pop()
                for name, is_dir in self._entries(kind, current):
                    handle = f"{current.rstrip('/')}/{name}"
                    bare = name.split(";", 1)[0]
                    if is_dir:
                        stack.append((handle, f"{prefix}{bare}/"))
                    else:
                        self._kinds[handle] = kind
                        found.append((f"{prefix}{bare}", handle))
            return sorted(found)
        return None

    @contextlib.contextmanager
    def open(self, handle: str) -> Iterator[BinaryIO]:
        with self.iso.open_file_from_iso(**{_KEYS[self._kinds[handle]]: handle}) as stream:
            yield stream

    def read(self, handle: str) -> bytes:
        with self.open(handle) as stream:
            data: bytes = stream.read()
            return data
