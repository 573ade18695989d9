"""``package.toml``: what a guest package holds and how it is installed and verified.

Two kinds:

- ``driver``: an INF (+ CAT + SYS/DLL), optionally the signer certificate to trust, optionally a
  root-enumerated hardware id that needs a device node, and the class the INF must declare;
- ``app``: files plus install/uninstall commands, services and scheduled tasks to expect.

Both may carry config files rendered from the spec (``[[config]]``: a Jinja template in the
package folder and a destination in the guest), a ``min_windows`` build and the ``editions``
allowed.  Every file is listed in ``[[files]]``, optionally with its sha256.

Errors are one line naming the manifest, the key and the value (:class:`PackageError`).
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vmforge.errors import UsageError

MANIFEST = "package.toml"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")
HINT = "see docs/packages.md for the package.toml format"


class PackageError(UsageError):
    """A package that is malformed, incomplete or unfit for the VM; nothing was copied yet."""


class PackageKind(StrEnum):
    DRIVER = "driver"
    APP = "app"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative(value: str) -> str:
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not value.strip():
        raise ValueError("must be a path inside the package folder")
    return str(path)


class PackageFile(_Model):
    path: str = Field(description="File inside the package folder (forward slashes).")
    sha256: str | None = Field(None, description="Expected sha256; checked before anything is copied.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _relative(value)

    @field_validator("sha256")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA_RE.match(value):
            raise ValueError("a sha256 is 64 hexadecimal digits")
        return value.lower() if value else value


class ConfigFile(_Model):
    template: str = Field(description="Jinja template in the package folder, rendered from the spec.")
    destination: str = Field(description="Absolute path of the rendered file in the guest.")

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return _relative(value)

    @field_validator("destination")
    @classmethod
    def _check_destination(cls, value: str) -> str:
        if not (re.match(r"^[A-Za-z]:\\", value) or value.startswith("/")):
            raise ValueError("must be an absolute guest path, e.g. C:\\Folder\\file.xml")
        return value


class DriverSection(_Model):
    inf: str = Field(description="The INF file (listed in [[files]]).")
    certificate: str | None = Field(None, description="Signer certificate (.cer) to import into TrustedPublisher.")
    hardware_id: str | None = Field(None, description="Hardware id the driver installs on; verified in the guest.")
    root_device: bool = Field(False, description="Create a root-enumerated device node with hardware_id (IDDs).")
    device_class: str | None = Field(None, description="Class the INF must declare, e.g. Display for an IDD.")


class AppSection(_Model):
    install: tuple[str, ...] = Field(description="Commands in the guest's shell; {stage} is the staging folder.")
    uninstall: tuple[str, ...] = Field((), description="Commands that remove the app.")
    services: tuple[str, ...] = Field((), description="Services that must exist and run after install.")
    scheduled_tasks: tuple[str, ...] = Field((), description="Scheduled tasks that must exist (e.g. at logon).")
    verify: tuple[str, ...] = Field((), description="Commands that must exit 0 once installed.")

    @field_validator("install")
    @classmethod
    def _check_install(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("an app needs at least one install command")
        return value


class Manifest(_Model):
    name: str
    kind: PackageKind
    version: str = Field(description="Package version; a change reinstalls an app.")
    description: str = ""
    user_supplied: bool = Field(False, description="Binaries come from the user (never shipped with vmforge).")
    min_windows: int | None = Field(None, ge=7600, description="Lowest Windows build, e.g. 19041.")
    editions: tuple[str, ...] = Field((), description="Allowed edition ids (install.wim EditionID); empty: any.")
    arches: tuple[str, ...] = Field(("amd64",), description="Guest architectures (apps; drivers ask the INF).")
    os: tuple[str, ...] = Field(("windows",), description="Guest OS families the package supports.")
    files: tuple[PackageFile, ...] = ()
    config: tuple[ConfigFile, ...] = ()
    driver: DriverSection | None = None
    app: AppSection | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("a package name is lower-case letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> Manifest:
        if self.kind is PackageKind.DRIVER and self.driver is None:
            raise ValueError("kind = 'driver' needs a [driver] table")
        if self.kind is PackageKind.APP and self.app is None:
            raise ValueError("kind = 'app' needs an [app] table")
        if self.kind is PackageKind.DRIVER and self.app is not None:
            raise ValueError("kind = 'driver' cannot have an [app] table")
        if self.kind is PackageKind.APP and self.driver is not None:
            raise ValueError("kind = 'app' cannot have a [driver] table")
        if self.driver is not None and self.driver.root_device and self.driver.hardware_id is None:
            raise ValueError("driver.root_device = true needs driver.hardware_id")
        listed = [f.path for f in self.files]
        duplicates = sorted({p for p in listed if listed.count(p) > 1})
        if duplicates:
            raise ValueError(f"files listed twice: {', '.join(duplicates)}")
        if self.driver is not None:
            for key, value in (("driver.inf", self.driver.inf), ("driver.certificate", self.driver.certificate)):
                if value is not None and value not in listed:
                    raise ValueError(f"{key} = '{value}' is not listed in [[files]]")
        return self

    def sha256_of(self, path: str) -> str | None:
        return next((f.sha256 for f in self.files if f.path == path), None)


def load_manifest(folder: Path) -> Manifest:
    """Read and validate ``folder/package.toml``; PackageError names the key and the value."""
    path = folder / MANIFEST
    label = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{folder} holds no {MANIFEST}", hint=HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read {label}: {exc}", hint=HINT) from None
    except tomllib.TOMLDecodeError as exc:
        raise PackageError(f"{label}: TOML syntax error: {exc}", hint=HINT) from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise PackageError(_describe(exc.errors()[0], data, label, len(exc.errors())), hint=HINT) from None


def _describe(error: Any, data: dict[str, Any], label: str, count: int) -> str:
    loc = [str(p) for p in error["loc"]]
    dotted = _dotted(loc)
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{label}: '{dotted}' is required{more}"
    if error["type"] == "extra_forbidden":
        return f"{label}: unknown key '{dotted}'{more}"
    if error["type"] == "enum":
        return f"{label}: {dotted} = {error.get('input')!r}: unknown kind, use 'driver' or 'app'{more}"
    if not loc:
        return f"{label}: {message}{more}"
    return f"{label}: {dotted} = {error.get('input')!r}: {message}{more}"


def _dotted(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out
