"""Finding packages and their files; checking the files against the manifest.

A package is a descriptor folder (``package.toml`` plus config templates) and a files folder
(the binaries).  Where each comes from, first match wins:

- descriptor: the spec's ``[[packages]] path`` when it holds a package.toml, else vmforge's
  ``guest-drivers/<name>/``, else ``$STATE/packages/<name>/``;
- files: the spec's ``path``, else ``$STATE/packages/<name>/`` when it exists or the package is
  ``user_supplied``, else the descriptor folder.  A listed file is looked up in the files
  folder, then the descriptor folder.

Binaries are never shipped with vmforge: users drop them into one of those folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vmforge.hashing import sha256_file as file_sha256
from vmforge.packages.manifest import MANIFEST, Manifest, PackageError, load_manifest
from vmforge.paths import state_root
from vmforge.resources import DataFolder, data_dir
from vmforge.spec import PackageRef


def packages_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$STATE/packages``: where users put the binaries of user-supplied packages."""
    return state_root(env) / "packages"


@dataclass(frozen=True)
class Package:
    manifest: Manifest
    descriptor_dir: Path
    files_dir: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    def file_path(self, relative: str) -> Path:
        primary = self.files_dir / relative
        if primary.exists() or self.files_dir == self.descriptor_dir:
            return primary
        fallback = self.descriptor_dir / relative
        return fallback if fallback.exists() else primary


def builtin_names() -> list[str]:
    root = data_dir(DataFolder.GUEST_DRIVERS)
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file())


def find_package(name: str, path: Path | None = None, env: Mapping[str, str] | None = None) -> Package:
    """Package ``name`` (or the package folder ``path``); PackageError when there is none."""
    state_folder = packages_dir(env) / name
    if path is not None and (path / MANIFEST).is_file():
        descriptor = path
    elif (data_dir(DataFolder.GUEST_DRIVERS) / name / MANIFEST).is_file():
        descriptor = data_dir(DataFolder.GUEST_DRIVERS) / name
    elif (state_folder / MANIFEST).is_file():
        descriptor = state_folder
    else:
        where = f"{path}, " if path is not None else ""
        raise PackageError(
            f"no package '{name}' (looked in {where}guest-drivers/, {state_folder})",
            hint="'vmforge packages list' shows the packages; a folder of your own needs a package.toml",
        )
    manifest = load_manifest(descriptor)
    if manifest.name != name:
        raise PackageError(
            f"{descriptor / MANIFEST}: name = '{manifest.name}' but the package is asked for as '{name}'",
            hint="use the manifest's name in [[packages]] and on the command line",
        )
    if path is not None:
        files = path
    elif state_folder.is_dir() or manifest.user_supplied:
        files = state_folder
    else:
        files = descriptor
    return Package(manifest, descriptor, files)


def resolve_argument(argument: str, refs: tuple[PackageRef, ...] = (), env: Mapping[str, str] | None = None) -> Package:
    """A command-line PKG: a package folder (holding package.toml) or a name (the spec's path wins)."""
    candidate = Path(argument)
    if (candidate / MANIFEST).is_file():
        manifest = load_manifest(candidate)
        return find_package(manifest.name, candidate, env)
    ref = next((r for r in refs if r.name == argument), None)
    return find_package(argument, ref.path if ref else None, env)


@dataclass(frozen=True)
class FileCheck:
    path: str  # as listed in the manifest
    local: Path
    status: str  # 'ok', 'missing', 'mismatch', 'unreadable'
    sha256: str | None = None
    expected: str | None = None

    def describe(self) -> str:
        if self.status == "missing":
            return f"{self.path}: missing (expected at {self.local})"
        if self.status == "mismatch":
            return f"{self.path}: sha256 {self.sha256} does not match the manifest's {self.expected}"
        if self.status == "unreadable":
            return f"{self.path}: cannot be read ({self.local})"
        return f"{self.path}: ok"


def check_files(package: Package) -> list[FileCheck]:
    """Every listed file: present, readable, and matching its sha256 when the manifest gives one."""
    results = []
    for entry in package.manifest.files:
        local = package.file_path(entry.path)
        if not local.is_file():
            results.append(FileCheck(entry.path, local, "missing", expected=entry.sha256))
            continue
        try:
            digest = file_sha256(local)
        except OSError:
            results.append(FileCheck(entry.path, local, "unreadable", expected=entry.sha256))
            continue
        status = "mismatch" if entry.sha256 is not None and entry.sha256 != digest else "ok"
        results.append(FileCheck(entry.path, local, status, digest, entry.sha256))
    return results
