"""vmforge's own reader for Windows driver INF files.

Reads what a package check needs: [Version] (Class, ClassGuid, Provider, CatalogFile,
DriverVer), [Manufacturer] and its models sections with architecture decorations, the hardware
ids each architecture installs, and [SourceDisksFiles].

The syntax handled: UTF-16LE/BE with a BOM, UTF-8 (with or without BOM) and ANSI files; ``;``
comments outside double quotes; ``\\`` line continuations; ``""`` inside quoted strings;
``%name%`` substitution from [Strings] (``%%`` is a literal percent; numeric ``%12%`` dirids stay
as written); section names case-insensitive, repeated sections merged.

Source INFs (as kept in driver repositories) still carry ``NT$ARCH$`` decorations and an empty
``DriverVer``; ``stampinf`` fills both in at build time.  :attr:`InfFile.stamped` says which form a
file is in, and :func:`InfFile.supports` treats ``$ARCH$`` as "any architecture, once stamped".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from vmforge.errors import VmforgeError

ARCHES = ("x86", "amd64", "arm", "arm64", "ia64")
ARCH_PLACEHOLDER = "$ARCH$"
_DRIVER_VER_RE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*(?:,\s*([0-9.]+))?\s*$")
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "x86",
                    "i386": "x86", "x86": "x86"}  # fmt: skip


class InfError(VmforgeError):
    """An INF file that cannot be read or lacks what a driver package needs."""


def guest_arch(machine: str) -> str:
    """INF architecture name for a machine name (``x86_64`` -> ``amd64``); unknown ones unchanged."""
    return _MACHINE_TO_ARCH.get(machine.lower(), machine.lower())


@dataclass(frozen=True, order=True)
class DriverVer:
    """``DriverVer = mm/dd/yyyy[,w.x.y.z]``; ordered by date, then version (as Windows ranks)."""

    when: date
    version: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        version = ".".join(str(p) for p in self.version)
        return f"{self.when:%m/%d/%Y}" + (f",{version}" if version else "")


def parse_driver_ver(raw: str) -> DriverVer | None:
    """The DriverVer value, or None when empty or not in ``mm/dd/yyyy[,version]`` form."""
    match = _DRIVER_VER_RE.match(raw)
    if match is None:
        return None
    month, day, year, version = match.groups()
    try:
        when = date(int(year), int(month), int(day))
    except ValueError:
        return None
    parts = tuple(int(p) for p in version.split(".") if p) if version else ()
    return DriverVer(when, parts)


@dataclass(frozen=True)
class InfLine:
    number: int  # first physical line of the (possibly continued) logical line
    key: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class InfModel:
    """One line of a models section: a device the INF installs on one architecture."""

    section: str
    arch: str  # 'amd64', 'arm64', 'x86', ... or '$ARCH$' in an unstamped source INF
    target: str  # the whole decoration, e.g. 'NTamd64.10.0...19041' ('' when undecorated)
    description: str
    install_section: str
    hardware_id: str
    compatible_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class InfFile:
    path: Path
    encoding: str
    sections: dict[str, tuple[InfLine, ...]]
    strings: dict[str, str]
    version: dict[str, str]
    models: tuple[InfModel, ...]
    source_files: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())  # lines that could not be understood

    # -- [Version] -----------------------------------------------------------------------------

    @property
    def device_class(self) -> str | None:
        return self.version.get("class")

    @property
    def class_guid(self) -> str | None:
        return self.version.get("classguid")

    @property
    def provider(self) -> str | None:
        return self.version.get("provider")

    @property
    def catalog_file(self) -> str | None:
        for key in ("catalogfile", *(f"catalogfile.nt{a}" for a in ARCHES), "catalogfile.nt"):
            if self.version.get(key):
                return self.version[key]
        return None

    @property
    def driver_ver_raw(self) -> str:
        return self.version.get("driverver", "")

    @property
    def driver_ver(self) -> DriverVer | None:
        return parse_driver_ver(self.driver_ver_raw)

    @property
    def unstamped_arch(self) -> bool:
        return any(m.arch == ARCH_PLACEHOLDER for m in self.models)

    @property
    def stamped(self) -> bool:
        """True for a built INF: a dated DriverVer and real architecture decorations."""
        return self.driver_ver is not None and not self.unstamped_arch

    def stamp_problems(self) -> list[str]:
        """Why this looks like a source INF that stampinf has not processed (empty when stamped)."""
        found = []
        if not self.driver_ver_raw.strip():
            found.append("DriverVer is empty")
        elif self.driver_ver is None:
            found.append(f"DriverVer '{self.driver_ver_raw}' is not 'mm/dd/yyyy,version'")
        if self.unstamped_arch:
            found.append("models are decorated NT$ARCH$")
        return found

    # -- models --------------------------------------------------------------------------------

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(sorted({m.arch for m in self.models}))

    def supports(self, arch: str) -> bool:
        return any(m.arch in (arch, ARCH_PLACEHOLDER) for m in self.models)

    def hardware_ids(self, arch: str) -> tuple[str, ...]:
        """Hardware ids installed on ``arch`` (``$ARCH$`` models count for every architecture)."""
        seen: dict[str, None] = {}
        for model in self.models:
            if model.arch in (arch, ARCH_PLACEHOLDER):
                seen.setdefault(model.hardware_id, None)
        return tuple(seen)

    def installs(self, hardware_id: str, arch: str) -> bool:
        """Whether a model on ``arch`` matches ``hardware_id``: the same id, or a more specific one
        (``PCI\\VEN_1AF4&DEV_1110`` is matched by ``PCI\\VEN_1AF4&DEV_1110&SUBSYS_...``)."""
        wanted = hardware_id.casefold()
        return any(
            have == wanted or have.startswith(wanted + "&") for have in (h.casefold() for h in self.hardware_ids(arch))
        )


# --- reading ---------------------------------------------------------------------------------


def decode_inf(raw: bytes, label: str) -> tuple[str, str]:
    """(text, encoding name) for INF bytes."""
    if raw.startswith(b"\xff\xfe"):
        return raw[2:].decode("utf-16-le", "strict"), "utf-16-le-bom"
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "strict"), "utf-16-be-bom"
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-bom"
    if len(raw) >= 4 and raw[1] == 0 and raw[3] == 0 and raw[0] != 0:
        raise InfError(
            f"{label}: looks like UTF-16 without a byte-order mark",
            hint="Windows reads UTF-16 INFs only with a BOM; save it as UTF-16LE with BOM or as UTF-8",
        )
    try:
        return raw.decode("ascii"), "ascii"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace"), "ansi"


def _strip_comment(line: str) -> str:
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:index]
    return line


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    pending = ""
    start = 0
    for number, physical in enumerate(text.splitlines(), start=1):
        content = _strip_comment(physical).rstrip()
        if not pending:
            start = number
        if content.endswith("\\"):
            pending += content[:-1] + " "
            continue
        logical = (pending + content).strip()
        pending = ""
        if logical:
            yield start, logical
    if pending.strip():
        yield start, pending.strip()


def _split_values(text: str) -> list[str]:
    """Comma-separated fields; quotes removed (``""`` inside quotes is one quote)."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            if quoted and index + 1 < len(text) and text[index + 1] == '"':
                current.append('"')
                index += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    fields.append("".join(current).strip())
    return fields


def _split_key(text: str) -> tuple[str | None, str]:
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "=" and not quoted:
            return text[:index].strip().strip('"'), text[index + 1 :]
    return None, text


_SUBST_RE = re.compile(r"%([^%]*)%")


def _substitute(value: str, strings: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "":
            return "%"
        if token.isdigit():
            return match.group(0)  # a dirid such as %12%
        return strings.get(token.casefold(), match.group(0))

    return _SUBST_RE.sub(replace, value)


def parse_inf_text(text: str, path: Path, encoding: str = "utf-8") -> InfFile:
    raw_sections: dict[str, list[tuple[int, str]]] = {}
    problems: list[str] = []
    current: str | None = None
    for number, line in _logical_lines(text):
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                problems.append(f"line {number}: section header without ']'")
                current = None
                continue
            current = line[1:end].strip().casefold()
            raw_sections.setdefault(current, [])
        elif current is None:
            problems.append(f"line {number}: text outside any section")
        else:
            raw_sections[current].append((number, line))

    strings: dict[str, str] = {}
    for name in sorted(raw_sections):
        if name == "strings" or name.startswith("strings."):
            for _number, line in raw_sections[name]:
                key, rest = _split_key(line)
                if key is not None and (name == "strings" or key.casefold() not in strings):
                    strings[key.casefold()] = _split_values(rest)[0]

    sections: dict[str, tuple[InfLine, ...]] = {}
    for name, lines in raw_sections.items():
        parsed = []
        for number, line in lines:
            key, rest = _split_key(line)
            values = tuple(_substitute(v, strings) for v in _split_values(rest))
            parsed.append(InfLine(number, _substitute(key, strings) if key is not None else None, values))
        sections[name] = tuple(parsed)

    version = {(line.key or "").casefold(): ",".join(line.values) for line in sections.get("version", ()) if line.key}
    models = _read_models(sections, problems)
    source_files = tuple(
        dict.fromkeys(
            (line.key or line.values[0])
            for name, lines in sections.items()
            if name == "sourcedisksfiles" or name.startswith("sourcedisksfiles.")
            for line in lines
        )
    )
    return InfFile(path, encoding, sections, strings, version, models, source_files, tuple(problems))


def _decoration_arch(decoration: str) -> tuple[str, str] | None:
    """('amd64', 'NTamd64.10.0') for a decoration; None when it names no NT platform."""
    head = decoration.split(".", 1)[0]
    if not head.lower().startswith("nt"):
        return None
    arch = head[2:]
    if arch.upper() == ARCH_PLACEHOLDER:
        return ARCH_PLACEHOLDER, decoration
    if arch == "":
        return "x86", decoration  # a plain 'NT' decoration applies to x86 only
    if arch.lower() in ARCHES:
        return arch.lower(), decoration
    return None


def _read_models(sections: dict[str, tuple[InfLine, ...]], problems: list[str]) -> tuple[InfModel, ...]:
    models: list[InfModel] = []
    for line in sections.get("manufacturer", ()):
        if not line.values or not line.values[0]:
            problems.append(f"line {line.number}: manufacturer entry without a models section")
            continue
        base = line.values[0]
        decorations = [d for d in line.values[1:] if d]
        targets: list[tuple[str, str]] = []
        if not decorations:
            targets.append(("x86", ""))  # undecorated models: x86 only on 64-bit Windows
        for decoration in decorations:
            parsed = _decoration_arch(decoration)
            if parsed is None:
                problems.append(f"line {line.number}: decoration '{decoration}' names no architecture")
                continue
            targets.append(parsed)
        for arch, target in targets:
            name = f"{base}.{target}" if target else base
            entries = sections.get(name.casefold())
            if entries is None:
                problems.append(f"line {line.number}: models section [{name}] is missing")
                continue
            for entry in entries:
                if len(entry.values) < 2 or not entry.values[1]:
                    problems.append(f"line {entry.number}: model without a hardware id")
                    continue
                models.append(
                    InfModel(
                        section=name,
                        arch=arch,
                        target=target,
                        description=entry.key or "",
                        install_section=entry.values[0],
                        hardware_id=entry.values[1],
                        compatible_ids=tuple(v for v in entry.values[2:] if v),
                    )
                )
    return tuple(models)


def read_inf(path: Path) -> InfFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InfError(f"cannot read INF {path}: {exc.strerror}", hint="check the package's files") from None
    try:
        text, encoding = decode_inf(raw, str(path))
    except UnicodeDecodeError as exc:
        raise InfError(
            f"{path}: not valid {exc.encoding} text at byte {exc.start}",
            hint="save the INF as UTF-16LE with BOM or as UTF-8",
        ) from None
    return parse_inf_text(text, path, encoding)
