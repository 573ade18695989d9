"""What makes a clone itself rather than a copy of its image.

* **probe**: after the clone boots, a new identity file ``/mnt/disk/vmforge/identity`` holding
  the clone's name and a fresh random id, written through the agent.
* **Windows**: an answer file for sysprep's ``/oobe`` first boot, rendered from
  ``answer-files/clone-specialize.xml.j2``: the clone's computer name, a new administrator
  password (kept in the clone's 0600 secrets file), and a first-logon step that installs the
  clone's own WinRM certificate (a new self-signed one, made and pinned exactly as for a
  created VM by :func:`vmforge.guest.remote_access.winrm_certificate`) from the clone media
  (:mod:`vmforge.images.clone_media`).  Rendered and validated here; no Windows guest boots it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from vmforge.credentials import ADMIN_PASSWORD
from vmforge.errors import VmforgeError
from vmforge.guest.certs import CertificatePair
from vmforge.guest.remote_access import winrm_certificate
from vmforge.guest.session import Guest
from vmforge.images.generalize import PROBE_IDENTITY
from vmforge.logs import register_secret
from vmforge.media.answer import BOOTSTRAP_COMMAND, Command, obfuscate_password
from vmforge.media.validate import validate_bytes
from vmforge.resources import DataFolder
from vmforge.state import VmDir, generate_password
from vmforge.templating import render_template

CLONE_SETUP_SCRIPT = r"vmforge\clone-setup.ps1"


@dataclass(frozen=True)
class WindowsSpecialization:
    answer: str
    certificate: CertificatePair
    computer_name: str


def windows_specialization(
    vm_dir: VmDir,
    *,
    computer_name: str,
    admin_user: str,
    timezone: str = "UTC",
    arch: str = "amd64",
    password: Callable[[], str] = generate_password,
) -> WindowsSpecialization:
    """The clone's own answer file and certificate; the new password and the certificate's key go
    to its secrets file, the certificate's fingerprint is pinned in its state."""
    new_password = vm_dir.secret(ADMIN_PASSWORD, password)
    register_secret(new_password)
    certificate = winrm_certificate(vm_dir, computer_name)
    first_logon = [
        Command(BOOTSTRAP_COMMAND.format(path=CLONE_SETUP_SCRIPT), "vmforge: install this clone's certificate"),
    ]
    text = render_template(
        "clone-specialize.xml.j2",
        DataFolder.ANSWER_FILES,
        arch=arch,
        computer_name=computer_name,
        timezone=timezone,
        admin_user=admin_user,
        password_obfuscated=obfuscate_password(new_password, "Password"),
        administrator_password_obfuscated=obfuscate_password(new_password, "AdministratorPassword"),
        first_logon=first_logon,
    )
    report = validate_bytes(text.encode("utf-8"), "clone specialize answer file")
    if report.errors:
        raise VmforgeError(f"the clone's answer file fails validation: {report.errors[0]}", hint="a vmforge bug")
    return WindowsSpecialization(text, certificate, computer_name)


def probe_identity(name: str, token: Callable[[], str] = lambda: secrets.token_hex(16)) -> str:
    return f"name={name}\nid={token()}\n"


def write_probe_identity(guest: Guest, identity: str) -> None:
    script = f"set -e; mkdir -p {PROBE_IDENTITY.rsplit('/', 1)[0]}; cat > {PROBE_IDENTITY}; sync"
    result = guest.run_script(script, timeout=60, stdin=identity.encode())
    if result.rc != 0:
        raise VmforgeError(
            f"writing the clone's identity file failed (exit {result.rc})",
            hint="is the probe's disk mounted on /mnt/disk (vmforge.disk=vda)?",
        )


def read_probe_file(guest: Guest, path: str) -> str | None:
    result = guest.run_script(f"cat {path}", timeout=60)
    return result.stdout.decode() if result.rc == 0 else None
