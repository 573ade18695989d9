"""Making a running VM's disk fit to be a base image, through the guest agent, then powering off.

* **probe** (Linux): delete the per-VM identity file ``/mnt/disk/vmforge/identity`` (the probe
  mounts its disk there with ``vmforge.disk=vda``), sync, power off.
* **Windows**: copy a generalize answer file (rendered from ``answer-files/sysprep-generalize.xml.j2``:
  PersistAllDeviceInstalls keeps the drivers) into the guest, remove the per-user provisioned
  appx packages that make sysprep fail, then ``sysprep /generalize /oobe /shutdown
  /unattend:<file>`` (``templates/guest/windows/sysprep-generalize.ps1``).  There is no Windows
  guest here: the script is syntax-checked (tree-sitter) and the answer file validated, nothing more.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vmforge.errors import VmforgeError
from vmforge.guest.os_windows import render_script
from vmforge.guest.session import Guest
from vmforge.media.validate import validate_bytes
from vmforge.resources import DataFolder
from vmforge.templating import render_template

PROBE_IDENTITY = "/mnt/disk/vmforge/identity"
PROBE_GENERALIZE = f"set -e; rm -f {PROBE_IDENTITY}; sync; (sleep 1; poweroff -f) >/dev/null 2>&1 &"
WINDOWS_UNATTEND = r"C:\Windows\Temp\vmforge-generalize.xml"
SYSPREP_TIMEOUT = 600.0


def generalize_answer(arch: str = "amd64") -> str:
    """The answer file sysprep applies when generalizing and at the clones' first boot."""
    text = render_template("sysprep-generalize.xml.j2", DataFolder.ANSWER_FILES, arch=arch)
    report = validate_bytes(text.encode("utf-8"), "generalize answer file")
    if report.errors:
        raise VmforgeError(f"the generalize answer file fails validation: {report.errors[0]}", hint="a vmforge bug")
    return text


def sysprep_script(unattend_path: str = WINDOWS_UNATTEND) -> str:
    return render_script("sysprep-generalize", unattend_path=unattend_path)


def generalize(guest: Guest, *, timeout: float = SYSPREP_TIMEOUT) -> str:
    """Generalize the guest and start its power-off; returns the OS family it had."""
    family = guest.adapter.family
    if family == "linux":
        result = guest.run_script(PROBE_GENERALIZE, timeout=60)
        if result.rc != 0:
            raise VmforgeError(
                f"removing the probe's identity file failed (exit {result.rc}): "
                + result.stderr.decode(errors="replace").strip(),
                hint="is the probe's disk mounted on /mnt/disk (vmforge.disk=vda on its kernel command line)?",
            )
        return family
    with tempfile.TemporaryDirectory() as folder:
        answer = Path(folder) / "generalize.xml"
        answer.write_text(generalize_answer(), encoding="utf-8")
        guest.copy_in(answer, WINDOWS_UNATTEND)
    result = guest.run_script(sysprep_script(), timeout=timeout)
    if result.rc != 0:
        raise VmforgeError(
            f"sysprep failed in the guest (exit {result.rc})",
            hint=r"read C:\Windows\System32\Sysprep\Panther\setupact.log in the guest",
        )
    return family
