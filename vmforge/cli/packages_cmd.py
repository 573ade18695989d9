"""``vmforge packages``: list, verify and install guest packages (drivers, compositor)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.cli.guest_cmd import open_guest
from vmforge.errors import ChecksFailed, UsageError
from vmforge.packages.catalog import Package, builtin_names, check_files, packages_dir, resolve_argument
from vmforge.packages.install import install_into_guest
from vmforge.packages.manifest import MANIFEST
from vmforge.spec import Overrides, Spec, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter


def _spec(spec_path: Path | None, sets: tuple[str, ...]) -> Spec:
    loaded, _ = load_spec(spec_path, Overrides(sets))
    return loaded


def _known(spec: Spec) -> list[Package]:
    names: dict[str, Package] = {}
    for ref in spec.packages:
        names[ref.name] = resolve_argument(ref.name, spec.packages)
    for name in builtin_names():
        names.setdefault(name, resolve_argument(name, spec.packages))
    state = packages_dir()
    if state.is_dir():
        for folder in sorted(state.iterdir()):
            if (folder / MANIFEST).is_file() and folder.name not in names:
                names[folder.name] = resolve_argument(str(folder), spec.packages)
    return [names[n] for n in sorted(names)]


def _summary(package: Package) -> dict[str, Any]:
    checks = check_files(package)
    manifest = package.manifest
    return {
        "name": manifest.name,
        "kind": manifest.kind.value,
        "version": manifest.version,
        "description": manifest.description,
        "user_supplied": manifest.user_supplied,
        "editions": list(manifest.editions),
        "min_windows": manifest.min_windows,
        "descriptor": str(package.descriptor_dir),
        "files_dir": str(package.files_dir),
        "files_ok": sum(1 for c in checks if c.status == "ok"),
        "files_total": len(checks),
        "problems": [c.describe() for c in checks if c.status != "ok"],
    }


@click.group("packages", cls=VmforgeGroup)
def packages() -> None:
    """Guest packages: drivers (MttVDD, IVSHMEM), guest tools, the compositor.

    Binaries are never shipped with vmforge: put them in $STATE/packages/<name>/ or in the
    folder the spec names with [[packages]] path = "...".
    """


@packages.command("list")
@spec_options
@json_option
def list_cmd(*, spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Packages vmforge knows (built in, in $STATE/packages, in the spec) and whether their files are there."""
    summaries = [_summary(p) for p in _known(_spec(spec_path, sets))]
    if as_json:
        print_json({"packages": summaries, "packages_dir": str(packages_dir())})
        return
    for item in summaries:
        state = "ready" if not item["problems"] else f"{item['files_total'] - item['files_ok']} file(s) missing/bad"
        echo(f"{item['name']:<24} {item['kind']:<7} {state:<26} {item['files_dir']}")


@packages.command("verify")
@click.argument("names", nargs=-1, required=True, metavar="PKG...")
@spec_options
@json_option
def verify_cmd(*, names: tuple[str, ...], spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Check packages' files: every missing file and every sha256 mismatch is named.

    PKG is a package name or a folder holding a package.toml.  Exit 3 when a file is missing or wrong.
    """
    spec = _spec(spec_path, sets)
    results = []
    for name in names:
        package = resolve_argument(name, spec.packages)
        checks = check_files(package)
        results.append(
            {
                "name": package.name,
                "files_dir": str(package.files_dir),
                "files": [
                    {"path": c.path, "status": c.status, "sha256": c.sha256, "expected": c.expected} for c in checks
                ],
                "problems": [c.describe() for c in checks if c.status != "ok"],
            }
        )
    bad = [r for r in results if r["problems"]]
    if not as_json:
        for result in results:
            if result["problems"]:
                for problem in result["problems"]:
                    echo(f"{result['name']}: {problem}")
            else:
                echo(f"{result['name']}: all {len(result['files'])} files present and matching")
    if bad:
        first = bad[0]
        count = sum(len(b["problems"]) for b in bad)
        more = f" (and {count - 1} more)" if count > 1 else ""
        raise ChecksFailed(
            f"{first['name']}: {first['problems'][0]}{more}",
            hint=f"put the files in {first['files_dir']}",
            report=results,
        )
    if as_json:
        print_json({"packages": results})


@packages.command("install")
@click.argument("vm_name", metavar="NAME")
@click.argument("names", nargs=-1, required=True, metavar="PKG...")
@click.option("--connect", "uri", default=None, help="libvirt URI (default: the spec's vm.connect).")
@click.option("--edition", default=None, help="The guest's EditionID (default: read from the guest).")
@spec_options
@json_option
def install_cmd(*, vm_name: str, names: tuple[str, ...], uri: str | None, edition: str | None,
                spec_path: Path | None, sets: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Install packages into VM NAME through its guest agent; a second run changes nothing.

    Every package is checked before anything is copied; copies are verified by hashing in the
    guest; the outcome is recorded in the VM's state.
    """
    spec = _spec(spec_path, sets)
    if len(set(names)) != len(names):
        raise UsageError("a package is named twice", hint="name each package once")
    chosen = [resolve_argument(name, spec.packages) for name in names]
    vm_dir = VmDir(vm_name)
    target = uri or spec.vm.connect
    origin = "--connect" if uri else "vm.connect"
    with vm_dir.lock():
        guest = open_guest(vm_name, target, origin)
        report = install_into_guest(spec, vm_name, vm_dir, guest, chosen, edition_id=edition,
                                    reporter=Reporter(quiet=as_json))  # fmt: skip
    if as_json:
        print_json(report.to_data())
        return
    for outcome in report.outcomes:
        echo(f"{outcome.name}: {outcome.action}")
        for change in outcome.changed:
            echo(f"  {change}")
    if report.reboot_required:
        sys.stderr.write("note: a driver asks for a reboot\n")
