"""The guest-side steps of a package install, per OS: argv built through the OS adapter.

Copies and config placement are generic (:mod:`vmforge.packages.install`); what differs per OS
is here.  Windows steps are the real .ps1 files in ``templates/guest/windows/packages/`` with
values as PowerShell single-quoted literals; Linux runs an app's commands with ``sh -c``.

Script output lines the installer understands: ``VMFORGE-CHANGE <what>`` (the step changed the
guest), ``VMFORGE-KEPT <what>`` (already so), ``VMFORGE-REBOOT <why>``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vmforge.guest.os_adapter import OsAdapter
from vmforge.guest.os_windows import ps_literal, render_script
from vmforge.packages.manifest import PackageKind
from vmforge.packages.preflight import CheckedPackage

STEP_TIMEOUT = 900.0
VERIFY_TIMEOUT = 120.0


@dataclass(frozen=True)
class GuestStep:
    label: str  # what it does, as the report and errors name it
    argv: tuple[str, ...]
    timeout: float = STEP_TIMEOUT


def stage_path(adapter: OsAdapter, stage: str, relative: str) -> str:
    path = stage
    for part in relative.split("/"):
        path = adapter.join(path, part)
    return path


def _command(adapter: OsAdapter, command: str, stage: str) -> str:
    quoted = ps_literal(stage) if adapter.family == "windows" else shlex.quote(stage)
    return command.replace("{stage}", quoted)


def install_steps(checked: CheckedPackage, adapter: OsAdapter, stage: str) -> list[GuestStep]:
    """What runs after the files and configs are in place, in order."""
    manifest = checked.package.manifest
    steps: list[GuestStep] = []
    if manifest.kind is PackageKind.DRIVER:
        assert manifest.driver is not None and adapter.family == "windows"
        inf_path = stage_path(adapter, stage, manifest.driver.inf)
        if checked.certificate is not None:
            cert_path = stage_path(adapter, stage, checked.certificate.path)
            steps.append(
                GuestStep(
                    f"import certificate {checked.certificate.path} into LocalMachine\\TrustedPublisher",
                    tuple(
                        adapter.script_argv(
                            render_script(
                                "packages/import-certificate", path=cert_path, thumbprint=checked.certificate.thumbprint
                            )
                        )
                    ),
                )
            )
        steps.append(
            GuestStep(
                f"pnputil /add-driver {manifest.driver.inf} /install",
                tuple(adapter.script_argv(render_script("packages/add-driver", inf_path=inf_path))),
            )
        )
        if manifest.driver.hardware_id is not None and manifest.driver.root_device:
            steps.append(
                GuestStep(
                    f"create root device {manifest.driver.hardware_id}",
                    tuple(
                        adapter.script_argv(
                            render_script(
                                "packages/create-root-device",
                                inf_path=inf_path,
                                hardware_id=manifest.driver.hardware_id,
                            )
                        )
                    ),
                )
            )
        return steps
    assert manifest.app is not None
    for command in manifest.app.install:
        steps.append(GuestStep(f"run {command}", tuple(adapter.script_argv(_command(adapter, command, stage)))))
    return steps


def verify_steps(checked: CheckedPackage, adapter: OsAdapter, stage: str) -> list[GuestStep]:
    """Checks that must pass once the package is installed (also on a re-run)."""
    manifest = checked.package.manifest
    steps: list[GuestStep] = []
    if manifest.kind is PackageKind.DRIVER:
        assert manifest.driver is not None
        if manifest.driver.hardware_id is not None:
            script = render_script("packages/verify-driver", hardware_id=manifest.driver.hardware_id)
            steps.append(
                GuestStep(
                    f"device {manifest.driver.hardware_id} present with status OK",
                    tuple(adapter.script_argv(script)),
                    VERIFY_TIMEOUT,
                )
            )
        return steps
    assert manifest.app is not None
    if manifest.app.services or manifest.app.scheduled_tasks:
        script = render_script(
            "packages/verify-app",
            services="|".join(manifest.app.services),
            tasks="|".join(manifest.app.scheduled_tasks),
        )
        steps.append(GuestStep("services running, scheduled tasks present", tuple(adapter.script_argv(script)),
                               VERIFY_TIMEOUT))  # fmt: skip
    for command in manifest.app.verify:
        steps.append(
            GuestStep(f"check {command}", tuple(adapter.script_argv(_command(adapter, command, stage))), VERIFY_TIMEOUT)
        )
    return steps


def facts_argv(adapter: OsAdapter) -> list[str] | None:
    """argv printing the guest's edition/build as JSON (Windows); None where there is none."""
    if adapter.family != "windows":
        return None
    return adapter.script_argv(render_script("packages/guest-facts"))
