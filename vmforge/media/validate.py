"""Answer-file validation: predict where Windows Setup would fail or silently skip something.

Findings have two severities.  ``error``: Setup will fail or ignore something essential (not
well-formed, not ASCII, envelope invalid, a windowsPE-only component elsewhere, list items
without ``wcm:action``, and, against an ISO, an architecture, image or product key the ISO
does not have).  ``warning``: the references and real files disagree (component/pass pairs
outside the reference's table, unknown setting paths, setting-level pass differences; the
reference is vmforge's shipped data, :mod:`vmforge.media.refdata`, unless another is given).
Every finding names an XPath and says what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lxml import etree

from vmforge.errors import ChecksFailed, VmforgeError
from vmforge.media import refdata
from vmforge.media import unattend_rules as rules
from vmforge.media.editions import KEY_RE, key_owner, normalise_edition
from vmforge.media.iso_inspect import IsoInspection
from vmforge.media.wim import WimImage

_U = f"{{{rules.UNATTEND_NS}}}"
_WCM_ACTION = f"{{{rules.WCM_NS}}}action"
_WCM_KEY = f"{{{rules.WCM_NS}}}keyValue"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    xpath: str
    message: str
    hint: str

    def to_data(self) -> dict[str, str]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.xpath}: {self.message} ({self.hint})"


@dataclass
class Report:
    source: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def error(self, xpath: str, message: str, hint: str) -> None:
        self.findings.append(Finding(Severity.ERROR, xpath, message, hint))

    def warn(self, xpath: str, message: str, hint: str) -> None:
        self.findings.append(Finding(Severity.WARNING, xpath, message, hint))

    def to_data(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "valid": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_data() for f in self.findings],
        }


@dataclass(frozen=True)
class Reference:
    """Reference tables for the warnings: vmforge's shipped data (:mod:`vmforge.media.refdata`),
    or a folder of newer Component.json/settings.json/autounattend.xsd (``--reference DIR``)."""

    component_passes: dict[str, tuple[str, ...]]
    settings: dict[str, dict[str, tuple[str, ...]]]  # component -> setting path -> passes

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Reference:
        passes = {name.casefold(): tuple(p) for name, p in data["component_passes"].items()}
        table = {
            name.casefold(): {path: tuple(p) for path, p in paths.items()} for name, paths in data["settings"].items()
        }
        return cls(passes, table)

    @classmethod
    def load(cls, folder: Path) -> Reference:
        return cls.from_data(refdata.generate(folder))

    @classmethod
    def builtin(cls) -> Reference:
        return _builtin_reference()


@functools.lru_cache(maxsize=1)
def _builtin_reference() -> Reference:
    return Reference.from_data(refdata.load_builtin())


class AnswerFileInvalid(ChecksFailed):
    """Validation found errors; ``--json`` output carries the whole report."""

    def __init__(self, message: str, hint: str | None, report: Report) -> None:
        super().__init__(message, hint, report=report.to_data())


# --- entry points ------------------------------------------------------------------------------


def validate_file(path: Path, inspection: IsoInspection | None = None, reference: Reference | None = None) -> Report:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VmforgeError(f"cannot read answer file {path}: {exc.strerror}", hint="check the path") from None
    return validate_bytes(raw, str(path), inspection, reference)


def validate_bytes(
    raw: bytes, source: str, inspection: IsoInspection | None = None, reference: Reference | None = None
) -> Report:
    reference = reference if reference is not None else Reference.builtin()
    report = Report(source)
    _check_ascii(raw, report)
    try:
        root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False))
    except etree.XMLSyntaxError as exc:
        report.error("/", f"not well-formed XML: {exc}", "fix the XML syntax at the line and column named")
        return report
    _check_envelope(root, report)
    components = list(_components(root))
    for settings_pass, component, xpath in components:
        _check_component(settings_pass, component, xpath, report, reference)
        _check_list_items(component, xpath, report)
        _check_settings(settings_pass, component, xpath, report, reference)
    _check_product_keys(components, report)
    if inspection is not None:
        _check_against_iso(components, inspection, report)
    return report


# --- checks ------------------------------------------------------------------------------------


def _check_ascii(raw: bytes, report: Report) -> None:
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        bad = next((i for i, b in enumerate(line) if b > 0x7F), None)
        if bad is not None:
            report.error(
                f"line {line_no}",
                f"non-ASCII byte 0x{line[bad]:02x} at column {bad + 1}",
                "Windows Setup reads answer files reliably only in ASCII; replace the character",
            )
            return


def _check_envelope(root: etree._Element, report: Report) -> None:
    if root.tag != f"{_U}unattend":
        report.error(
            "/" + _local(root.tag),
            f'root element is <{root.tag}>, not <unattend xmlns="{rules.UNATTEND_NS}">',
            f"the root must be <unattend> in the namespace {rules.UNATTEND_NS}",
        )
        return
    seen_settings = False
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag == f"{_U}servicing":
            if seen_settings:
                report.error("/unattend/servicing", "<servicing> after <settings>", "move <servicing> first")
            continue
        if child.tag == f"{_U}settings":
            seen_settings = True
            xpath = f"/unattend/settings[@pass='{child.get('pass')}']"
            setup_pass = child.get("pass")
            if setup_pass is None:
                report.error("/unattend/settings", "<settings> without a pass attribute", _pass_hint())
            elif setup_pass in rules.SCHEMA_ONLY_PASSES:
                report.warn(
                    xpath, f"pass '{setup_pass}' is never run by Windows Setup", "move the settings to oobeSystem"
                )
            elif setup_pass not in rules.PASSES:
                report.error(xpath, f"unknown pass '{setup_pass}'", _pass_hint())
            for component in child:
                if isinstance(component.tag, str) and component.tag != f"{_U}component":
                    report.error(
                        f"{xpath}/{_local(component.tag)}",
                        f"<{_local(component.tag)}> inside <settings>",
                        "only <component> elements belong in <settings>",
                    )
            continue
        if child.tag.startswith(_U):
            report.error(
                f"/unattend/{_local(child.tag)}",
                f"unexpected element <{_local(child.tag)}>",
                "<unattend> holds <servicing> and <settings> (and elements of other namespaces)",
            )


def _pass_hint() -> str:
    return "use one of: " + ", ".join(rules.PASSES)


def _components(root: etree._Element) -> Iterator[tuple[str, etree._Element, str]]:
    for settings in root.iterfind(f"{_U}settings"):
        setup_pass = settings.get("pass") or ""
        for component in settings.iterfind(f"{_U}component"):
            name = component.get("name") or "?"
            arch = component.get("processorArchitecture") or "?"
            xpath = (
                f"/unattend/settings[@pass='{setup_pass}']/component[@name='{name}'][@processorArchitecture='{arch}']"
            )
            yield setup_pass, component, xpath


def _check_component(
    setup_pass: str, component: etree._Element, xpath: str, report: Report, reference: Reference
) -> None:
    name = component.get("name")
    if not name:
        report.error(xpath, "component without a name attribute", 'add name="Microsoft-Windows-..."')
        return
    checks = (
        ("processorArchitecture", rules.ARCH_RE, "amd64, x86, arm64 or wow64"),
        ("publicKeyToken", rules.TOKEN_RE, f"{rules.MICROSOFT_TOKEN} (Microsoft's components)"),
    )
    for attribute, pattern, expected in checks:
        value = component.get(attribute)
        if value is None or not pattern.match(value):
            report.error(
                f"{xpath}/@{attribute}",
                f"{attribute} is {value!r}" if value is not None else f"{attribute} is missing",
                f'set {attribute}="..." to {expected}',
            )
    token = component.get("publicKeyToken")
    if token is not None and rules.TOKEN_RE.match(token) and token.lower() != rules.MICROSOFT_TOKEN:
        report.error(
            f"{xpath}/@publicKeyToken",
            f"publicKeyToken {token} is not Microsoft's: Setup ignores the component",
            f'use publicKeyToken="{rules.MICROSOFT_TOKEN}"',
        )
    if component.get("language") is None:
        report.error(f"{xpath}/@language", "language is missing", 'add language="neutral"')
    scope = component.get("versionScope")
    if scope is not None and not rules.VERSION_SCOPE_RE.match(scope):
        report.error(f"{xpath}/@versionScope", f"versionScope is {scope!r}", 'use versionScope="nonSxS"')
    version = component.get("version")
    if version is not None and not rules.FOUR_PART_VERSION_RE.match(version):
        report.error(f"{xpath}/@version", f"version {version!r} is not a four-part version", "e.g. 10.0.0.0")
    if setup_pass not in rules.PASSES:
        return
    folded = name.casefold()
    if folded in rules.WINPE_ONLY and setup_pass != rules.WINDOWS_PE:
        report.error(
            xpath,
            f"{name} is read only in the windowsPE pass; in {setup_pass} Setup ignores it",
            'move the component into <settings pass="windowsPE">',
        )
        return
    label = "the reference (Component.json)"
    passes = reference.component_passes.get(folded)
    if passes is None:
        report.warn(xpath, f"component {name} is not in {label}", "check the component name's spelling")
    elif setup_pass not in passes:
        report.warn(
            xpath,
            f"{label} lists {name} for {', '.join(passes)}, not {setup_pass}",
            "move it to one of those passes unless a working setup shows otherwise",
        )


def _element_path(element: etree._Element, component: etree._Element) -> list[str]:
    parts = []
    node: etree._Element | None = element
    while node is not None and node is not component:
        parts.append(_local(node.tag))
        node = node.getparent()
    return list(reversed(parts))


def _check_list_items(component: etree._Element, xpath: str, report: Report) -> None:
    for element in component.iter():
        if element is component or not isinstance(element.tag, str):
            continue
        local = _local(element.tag)
        action = element.get(_WCM_ACTION)
        if action is not None and action not in rules.WCM_ACTIONS:
            report.error(
                f"{xpath}/{'/'.join(_element_path(element, component))}",
                f'wcm:action="{action}" is not add, modify or remove',
                'use wcm:action="add"',
            )
        needs_action = local in rules.LIST_ITEMS or element.get(_WCM_KEY) is not None
        if needs_action and action is None and _in_unattend_ns(element):
            report.error(
                f"{xpath}/{'/'.join(_element_path(element, component))}",
                f"list item <{local}> has no wcm:action: Setup skips it",
                f'add wcm:action="add" (and declare xmlns:wcm="{rules.WCM_NS}")',
            )


def _check_settings(
    setup_pass: str, component: etree._Element, xpath: str, report: Report, reference: Reference
) -> None:
    name = (component.get("name") or "").casefold()
    known = reference.settings.get(name)
    if known is None or setup_pass not in rules.PASSES:
        return
    known_folded = {path.casefold(): passes for path, passes in known.items()}
    reported: list[str] = []
    for element in component.iter():
        if element is component or not isinstance(element.tag, str) or not _in_unattend_ns(element):
            continue
        path = "/".join(_element_path(element, component))
        folded = path.casefold()
        if any(folded.startswith(prefix + "/") for prefix in reported):
            continue
        passes = known_folded.get(folded)
        parent = element.getparent()
        if passes is None and parent is not None and parent.get(_WCM_KEY) is not None:
            passes = known_folded.get(folded.rsplit("/", 1)[0])  # keyed list: Key/Value forms
        if passes is None:
            reported.append(folded)
            report.warn(
                f"{xpath}/{path}",
                f"setting {path} is not in the reference for {component.get('name')}",
                "newer Windows releases accept settings the 2018 reference lacks; check the name",
            )
        elif passes and setup_pass not in passes:
            reported.append(folded)
            report.warn(
                f"{xpath}/{path}",
                f"the reference lists {path} for {', '.join(passes)}, not {setup_pass}",
                "move it to one of those passes unless a working setup shows otherwise",
            )


def _setup_children(
    components: list[tuple[str, etree._Element, str]], path: str
) -> Iterator[tuple[etree._Element, str]]:
    for setup_pass, component, xpath in components:
        if (component.get("name") or "").casefold() != "microsoft-windows-setup" or setup_pass != rules.WINDOWS_PE:
            continue
        for element in component.iterfind(path, {"u": rules.UNATTEND_NS}):
            yield element, f"{xpath}/{'/'.join(_element_path(element, component))}"


def _product_keys(components: list[tuple[str, etree._Element, str]]) -> Iterator[tuple[str, str]]:
    yield from (((e.text or "").strip(), x) for e, x in _setup_children(components, "u:UserData/u:ProductKey/u:Key"))
    for setup_pass, component, xpath in components:
        shell_setup = (component.get("name") or "").casefold() == "microsoft-windows-shell-setup"
        if shell_setup and setup_pass == rules.SPECIALIZE:
            for element in component.iterfind("u:ProductKey", {"u": rules.UNATTEND_NS}):
                yield (element.text or "").strip(), f"{xpath}/ProductKey"


def _check_product_keys(components: list[tuple[str, etree._Element, str]], report: Report) -> None:
    for key, xpath in _product_keys(components):
        if not key:
            report.warn(xpath, "empty product key", "remove the element or put the edition's key in it")
        elif not KEY_RE.match(key.upper()):
            report.error(
                xpath, f"malformed product key {key!r}", "a key is five groups of five letters/digits joined by '-'"
            )


def _selected_images(
    components: list[tuple[str, etree._Element, str]], inspection: IsoInspection, report: Report
) -> list[WimImage]:
    selected: list[WimImage] = []
    for meta, xpath in _setup_children(components, "u:ImageInstall/u:OSImage/u:InstallFrom/u:MetaData"):
        key = (meta.findtext(f"{_U}Key") or "").strip().upper()
        value = (meta.findtext(f"{_U}Value") or "").strip()
        image: WimImage | None = None
        if key == "/IMAGE/INDEX":
            image = inspection.image(int(value)) if value.isdigit() else None
        elif key == "/IMAGE/NAME":
            image = next((i for i in inspection.images if i.name.casefold() == value.casefold()), None)
        elif key == "/IMAGE/DESCRIPTION":
            image = next((i for i in inspection.images if i.description.casefold() == value.casefold()), None)
        else:
            report.error(
                xpath, f"MetaData key {key!r} is not /IMAGE/INDEX, /IMAGE/NAME or /IMAGE/DESCRIPTION", "fix Key"
            )
            continue
        if image is None:
            available = "; ".join(f"{i.index}: {i.name}" for i in inspection.images)
            report.error(
                xpath,
                f"{key} = {value!r} is not in {inspection.path.name} (it holds {available})",
                "select one of the images the ISO holds",
            )
        else:
            selected.append(image)
    return selected


def _check_against_iso(
    components: list[tuple[str, etree._Element, str]], inspection: IsoInspection, report: Report
) -> None:
    allowed: set[str] = set()
    for arch in inspection.arches:
        allowed |= rules.ARCH_COMPATIBLE.get(arch, frozenset({arch}))
    for _pass, component, xpath in components:
        arch = (component.get("processorArchitecture") or "").lower()
        if rules.ARCH_RE.match(arch) and allowed and arch not in allowed:
            report.error(
                f"{xpath}/@processorArchitecture",
                f"processorArchitecture {arch} does not match the ISO ({'/'.join(inspection.arches)}): Setup skips it",
                f'use processorArchitecture="{inspection.arches[0]}"',
            )
    images = _selected_images(components, inspection, report)
    for key, xpath in _product_keys(components):
        if not KEY_RE.match(key.upper()):
            continue
        owners = key_owner(key)
        if not owners:
            continue
        editions = {edition for _family, edition in owners}
        targets = images or list(inspection.images)
        if not any(normalise_edition(i.edition_id) in editions for i in targets):
            wanted = ", ".join(sorted({i.edition_id for i in targets}))
            report.error(
                xpath,
                f"{key} is the generic key of {', '.join(sorted(editions))}, but the image is {wanted}",
                "use the key of the edition you install (or remove it when the image is selected by name)",
            )


def _local(tag: Any) -> str:
    text = str(tag)
    return text.split("}", 1)[1] if "}" in text else text


def _in_unattend_ns(element: etree._Element) -> bool:
    return isinstance(element.tag, str) and element.tag.startswith(_U)
