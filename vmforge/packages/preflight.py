"""Preflight: everything about a package that can be checked before a byte is copied.

Files present and matching their sha256, config templates rendered, the INF read (referenced
files in the package, guest architecture supported, class as expected, hardware id installed,
DriverVer present), the certificate readable, the guest OS, build and edition allowed.  The
first problem is a :class:`~vmforge.packages.manifest.PackageError` (one line, with a hint);
things worth knowing but not fatal (an unstamped source INF) are warnings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from jinja2.sandbox import SandboxedEnvironment

from vmforge.media.iso_inspect import IsoInspection
from vmforge.packages.catalog import FileCheck, Package, check_files, find_package
from vmforge.packages.inf import DriverVer, InfError, InfFile, read_inf
from vmforge.packages.manifest import MANIFEST, PackageError, PackageKind
from vmforge.plan import SPECIALIZED_EDITION_IDS
from vmforge.spec import Spec

# Editions whose displays can be made "specialized": one list, kept with the guards' plan rules.
SPECIALIZED_DISPLAY_EDITIONS = SPECIALIZED_EDITION_IDS


@dataclass(frozen=True)
class Target:
    """The guest a package is meant for."""

    os_family: str  # 'windows' or 'linux'
    arch: str  # INF architecture name: 'amd64', 'arm64', ...
    edition_id: str | None = None  # install.wim EditionID, e.g. 'Enterprise'; None when unknown
    build: int | None = None  # Windows build number; None when unknown


@dataclass(frozen=True)
class Certificate:
    path: str
    thumbprint: str  # SHA-1 of the DER bytes, upper-case hex (as Windows shows it)
    subject: str


@dataclass(frozen=True)
class CheckedPackage:
    package: Package
    files: tuple[FileCheck, ...]
    configs: dict[str, bytes]  # guest destination -> rendered content
    inf: InfFile | None = None
    certificate: Certificate | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def driver_ver(self) -> DriverVer | None:
        return self.inf.driver_ver if self.inf else None

    def digest(self) -> str:
        """Identity of what would be installed: manifest, every file, every rendered config."""
        digest = hashlib.sha256((self.package.descriptor_dir / MANIFEST).read_bytes())
        for check in sorted(self.files, key=lambda c: c.path):
            digest.update(f"\0{check.path}\0{check.sha256}".encode())
        for destination in sorted(self.configs):
            digest.update(f"\0{destination}\0".encode() + hashlib.sha256(self.configs[destination]).digest())
        return digest.hexdigest()


def config_context(spec: Spec) -> dict[str, Any]:
    """What config templates see: the spec's display settings (and the VM's name)."""
    modes = spec.display.idd_resolutions or (spec.display.resolution,)
    return {
        "vm_name": spec.vm.name,
        "display": {
            "monitors": spec.display.idd_monitors,
            "resolutions": [{"width": int(m.split("x")[0]), "height": int(m.split("x")[1])} for m in modes],
            "refresh_rates": list(spec.display.refresh_rates),
        },
    }


def render_configs(package: Package, spec: Spec) -> dict[str, bytes]:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(package.descriptor_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    context = config_context(spec)
    rendered: dict[str, bytes] = {}
    for config in package.manifest.config:
        label = f"{package.descriptor_dir / config.template}"
        try:
            text = env.get_template(config.template).render(**context)
        except jinja2.TemplateNotFound:
            raise PackageError(
                f"{package.name}: config template {config.template} is missing ({label})",
                hint="put the template beside package.toml",
            ) from None
        except (jinja2.UndefinedError, jinja2.TemplateSyntaxError) as exc:
            raise PackageError(f"{label}: {exc.message}", hint="fix the config template") from None
        rendered[config.destination] = text.encode("utf-8")
    return rendered


def read_certificate(package: Package, relative: str) -> Certificate:
    path = package.file_path(relative)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackageError(
            f"{package.name}: certificate {relative} cannot be read ({exc.strerror})",
            hint=f"put the signer certificate at {path}",
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else x509.load_der_x509_certificate(raw)
        der = cert.public_bytes(Encoding.DER)
    except ValueError:
        raise PackageError(
            f"{package.name}: certificate {relative} is not an X.509 certificate (DER or PEM)",
            hint="export the catalog's signer certificate as a .cer file",
        ) from None
    return Certificate(relative, hashlib.sha1(der).hexdigest().upper(), cert.subject.rfc4514_string())  # noqa: S324


def check_package(package: Package, spec: Spec, target: Target) -> CheckedPackage:
    """Every check that needs no guest; PackageError on the first problem."""
    manifest = package.manifest
    name = package.name
    if target.os_family not in manifest.os:
        raise PackageError(
            f"{name}: a {manifest.kind.value} package for {', '.join(manifest.os)} guests, not {target.os_family}",
            hint="install it into a guest of that OS, or remove it from [[packages]]",
        )
    _check_edition(name, manifest.editions, target)
    minimum = manifest.min_windows
    if minimum is not None and target.os_family == "windows" and target.build is not None and target.build < minimum:
        raise PackageError(
            f"{name}: needs Windows build {minimum} or newer, the guest is build {target.build}",
            hint="use a newer Windows ISO",
        )
    files = check_files(package)
    bad = [c for c in files if c.status != "ok"]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        where = package.files_dir
        raise PackageError(
            f"{name}: {bad[0].describe()}{more}",
            hint=f"'vmforge packages verify {name}' lists every file; put the package's files in {where}",
        )
    configs = render_configs(package, spec)
    warnings: list[str] = []
    inf = None
    certificate = None
    if manifest.kind is PackageKind.DRIVER:
        assert manifest.driver is not None
        inf = _check_inf(package, target, warnings)
        if manifest.driver.certificate is not None:
            certificate = read_certificate(package, manifest.driver.certificate)
    elif target.os_family != "windows" and manifest.app and (manifest.app.services or manifest.app.scheduled_tasks):
        raise PackageError(
            f"{name}: services and scheduled tasks are checked on Windows guests only",
            hint="use app.verify commands for other guests",
        )
    if manifest.kind is PackageKind.APP and target.arch not in manifest.arches:
        raise PackageError(
            f"{name}: built for {', '.join(manifest.arches)}, the guest is {target.arch}",
            hint="use the package's build for the guest's architecture",
        )
    return CheckedPackage(package, tuple(files), configs, inf, certificate, tuple(warnings))


def _check_edition(name: str, editions: tuple[str, ...], target: Target) -> None:
    if not editions or target.os_family != "windows":
        return
    if target.edition_id is None:
        raise PackageError(
            f"{name}: needs one of the editions {', '.join(editions)}, and the guest's edition is unknown",
            hint="set windows.iso (vmforge reads the edition from install.wim) or install into a running guest",
        )
    if target.edition_id.casefold() not in {e.casefold() for e in editions}:
        raise PackageError(
            f"{name}: edition '{target.edition_id}' cannot run it; it needs {', '.join(editions)}",
            hint="specialized displays need Windows Enterprise, Pro for Workstations or IoT Enterprise; "
            "set windows.edition to one of those",
        )


def _check_inf(package: Package, target: Target, warnings: list[str]) -> InfFile:
    manifest = package.manifest
    assert manifest.driver is not None
    name = package.name
    try:
        inf = read_inf(package.file_path(manifest.driver.inf))
    except InfError as exc:
        raise PackageError(f"{name}: {exc.message}", hint=exc.hint) from None
    label = f"{name}: {manifest.driver.inf}"
    listed = {f.path.casefold() for f in manifest.files}
    referenced = [*inf.source_files, *([inf.catalog_file] if inf.catalog_file else [])]
    inf_dir = str(Path(manifest.driver.inf).parent)
    for file_name in referenced:
        relative = file_name if inf_dir == "." else f"{inf_dir}/{file_name}"
        if relative.casefold() not in listed:
            raise PackageError(
                f"{label} references {file_name}, which the package does not list in [[files]]",
                hint="add the file to the package (and to package.toml)",
            )
    if not inf.models:
        raise PackageError(f"{label} installs no devices ([Manufacturer] has no models)", hint="check the INF")
    if not inf.supports(target.arch):
        raise PackageError(
            f"{label} has no models for {target.arch} (it has {', '.join(inf.architectures)})",
            hint=f"use the driver's {target.arch} build",
        )
    expected_class = manifest.driver.device_class
    if expected_class is not None and (inf.device_class or "").casefold() != expected_class.casefold():
        raise PackageError(
            f"{label} is class '{inf.device_class}', the package expects '{expected_class}'",
            hint="an indirect display driver is class Display; check the INF or driver.device_class",
        )
    hardware_id = manifest.driver.hardware_id
    if hardware_id is not None and not inf.installs(hardware_id, target.arch):
        offered = ", ".join(inf.hardware_ids(target.arch)) or "none"
        raise PackageError(
            f"{label} does not install hardware id '{hardware_id}' on {target.arch} (it installs {offered})",
            hint="set driver.hardware_id to one the INF lists",
        )
    if not inf.driver_ver_raw.strip():
        raise PackageError(
            f"{label}: DriverVer is empty (an unstamped source INF)",
            hint="use the built driver package (stampinf sets DriverVer), not the source INF",
        )
    if not inf.stamped:
        warnings.append(f"{label} is an unstamped source INF: {'; '.join(inf.stamp_problems())}")
    warnings.extend(f"{label} {p}" for p in inf.problems)
    return inf


def target_from_inspection(spec: Spec, inspection: IsoInspection) -> Target:
    """The Windows guest the spec will install, as the ISO's install.wim describes it."""
    image = None
    if spec.windows.edition is not None:
        image = inspection.find_image(spec.windows.edition)
    elif len(inspection.images) == 1:
        image = inspection.images[0]
    arch = (image.arch if image else None) or (inspection.arches[0] if len(inspection.arches) == 1 else "amd64")
    return Target(
        "windows",
        arch,
        image.edition_id or None if image else None,
        image.build if image else None,
    )


def preflight_packages(spec: Spec, inspection: IsoInspection | None) -> list[CheckedPackage]:
    """Check the spec's ``[[packages]]`` before a VM is created (the ``create`` preflight).

    With the ISO inspection the edition and build are known, so a compositor on an edition
    without specialized displays is refused here, before anything boots.
    """
    target = target_from_inspection(spec, inspection) if inspection else Target("windows", "amd64")
    return [check_package(find_package(ref.name, ref.path), spec, target) for ref in spec.packages]
