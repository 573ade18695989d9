"""The guest-side bootstrap script (templates/guest/bootstrap.ps1.j2) for the answer media."""

from __future__ import annotations

from vmforge.media import phases
from vmforge.media.package_media import MEDIA_PACKAGES_DIR, STAGE_SCRIPT, SUMS_FILE, WINDOWS_STAGE_ROOT
from vmforge.plan import Plan
from vmforge.resources import DataFolder
from vmforge.templating import render_template

TEMPLATE = "guest/bootstrap.ps1.j2"
GUEST_AGENT_MSI = {"amd64": r"guest-agent\qemu-ga-x86_64.msi", "x86": r"guest-agent\qemu-ga-i386.msi"}
PANTHER_UNATTEND = r"C:\Windows\Panther\unattend.xml"


def render_bootstrap(plan: Plan, arch: str, winrm_listener: str | None = None) -> str:
    """``winrm_listener``: the WinRM set-up script beside the bootstrap on the media, run after
    the guest agent is installed (:mod:`vmforge.guest.winrm_setup`); None: no WinRM."""
    family = plan.family.value if plan.family else "unknown"
    text = render_template(
        TEMPLATE,
        DataFolder.TEMPLATES,
        computer_name=plan.computer_name or "VMFORGE",
        family=family,
        arch=arch,
        marker=phases.MARKER,
        serial_port=phases.SERIAL_PORT,
        guest_agent_msi=GUEST_AGENT_MSI.get(arch, GUEST_AGENT_MSI["amd64"]),
        panther_unattend=PANTHER_UNATTEND,
        winrm_listener=winrm_listener or "",
        packages_dir=_windows(MEDIA_PACKAGES_DIR),
        packages_sums=_windows(f"{MEDIA_PACKAGES_DIR}/{SUMS_FILE}"),
        stage_script=_windows(f"vmforge/{STAGE_SCRIPT}"),
        package_stage=WINDOWS_STAGE_ROOT,
        phase_start=phases.POSTINSTALL_START,
        phase_done=phases.POSTINSTALL_DONE,
        phase_failed=phases.POSTINSTALL_FAILED,
    )
    # Windows PowerShell reads BOM-less scripts in the ANSI code page: keep them ASCII, CRLF.
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _windows(media_path: str) -> str:
    return media_path.replace("/", "\\")
