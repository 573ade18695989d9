"""A Windows clone's specialize media on the real daemon: built by vmforge's answer-ISO writer,
uploaded as a 0600 pool volume, attached to the clone's persistent definition, read back with
xorriso, accepted by QEMU, and removed again; no secret in the domain XML, QEMU's command
line, any argv vmforge runs, or the logs.

What cannot run here: Windows itself (no Windows guest on this host), so sysprep's oobe pass
reading the answer file and the first-logon certificate import are not exercised.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from images_support import POOL, PREFIX, SYSTEM_URI, img_pool_dir, uefi_tpm_plan  # noqa: F401 - fixture

from vmforge.credentials import ADMIN_PASSWORD
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.lifecycle import provision, start
from vmforge.domain.shapes import Shape
from vmforge.guest.certs import fingerprint_pem
from vmforge.guest.remote_access import PIN_WINRM, SECRET_WINRM_KEY, get_pin
from vmforge.host.facts import read_host_facts
from vmforge.images.capture import capture_image
from vmforge.images.clone import clone_vm
from vmforge.images.clone_media import ROLE, STATE_KEY, detach_clone_media
from vmforge.images.store import prune_images
from vmforge.ownership import domain_owner
from vmforge.plan import resolve_plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration

SOURCE = PREFIX + "winsrc"
CLONE = PREFIX + "wclone"


def windows_clone_spec(pool_dir: Path) -> Any:
    return parse_spec(
        {
            "os": "windows",
            "vm": {"name": CLONE, "virt_type": "qemu", "memory": "256MiB", "vcpus": 1, "firmware": "uefi"},
            "windows": {"family": "11", "edition": "Windows 11 Pro", "admin_user": "vmforge"},
            "disk": {"size": "32MiB", "pool": POOL, "pool_dir": str(pool_dir)},
            "network": {"type": "none"},
            "display": {"vnc": False},
            "ivshmem": {"enabled": False},
        },
        label="test",
    )


def extract(iso: Path, into: Path) -> dict[str, bytes]:
    into.mkdir()
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(into)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {str(p.relative_to(into)): p.read_bytes() for p in into.rglob("*") if p.is_file()}


def test_windows_clone_media_attached_read_back_and_removed(
    system_conn: Any,
    img_pool_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An image with UEFI NVRAM and TPM state (no OS: only storage and definitions are checked).
    source = provision(system_conn, uefi_tpm_plan(system_conn, img_pool_dir, SOURCE), Shape.FINAL)
    start(source)
    time.sleep(1)
    source.destroy()
    image = capture_image(system_conn, SOURCE, label="win-media-test")
    destroy_vm(system_conn, SOURCE, VmDir(SOURCE))

    spec = windows_clone_spec(img_pool_dir)
    plan = resolve_plan(spec, host=read_host_facts(system_conn, SYSTEM_URI, "qemu"))
    vm_dir = VmDir(CLONE)
    argvs: list[str] = []
    real_popen_init = subprocess.Popen.__init__

    def recording_init(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
        argvs.append(" ".join(map(str, args)) if isinstance(args, list | tuple) else str(args))
        real_popen_init(self, args, *rest, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(subprocess.Popen, "__init__", recording_init)
        report = clone_vm(system_conn, image, plan, vm_dir=vm_dir, guest=None, reporter=Reporter(), spec=spec)
    assert report.base_unchanged and any("specialize media" in n for n in report.notes)

    secrets = vm_dir.load_secrets()
    password = secrets[ADMIN_PASSWORD]
    dom = system_conn.lookupByName(CLONE)
    config = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    drive = re.search(r"<disk type='volume' device='cdrom'>.*?</disk>", config, re.S)
    assert drive is not None and f"<serial>{ROLE}</serial>" in drive.group(0)
    assert f"volume='{CLONE}-specialize.iso'" in drive.group(0) and "<readonly/>" in drive.group(0)
    recorded = vm_dir.load().extra[STATE_KEY]  # type: ignore[union-attr]
    volume_file = Path(recorded["key"])
    assert volume_file.parent == img_pool_dir and volume_file.stat().st_mode & 0o777 == 0o600
    assert any(v.name == volume_file.name for v in domain_owner(dom).volumes)  # destroy would remove it
    local = next(vm_dir.media.glob("clone-specialize-*.iso"))
    assert local.stat().st_mode & 0o777 == 0o600

    files = extract(volume_file, tmp_path / "media")
    assert sorted(files) == [
        "autounattend.xml",
        "vmforge/clone-setup.ps1",
        "vmforge/winrm-listener.ps1",
        "vmforge/winrm-pfx.txt",
        "vmforge/winrm.pfx",
    ]
    answer = files["autounattend.xml"].decode()
    assert f"<ComputerName>{plan.computer_name or CLONE[:15].upper()}</ComputerName>" in answer
    assert base64.b64encode((password + "Password").encode("utf-16-le")).decode() in answer
    assert b"\r\n" in files["vmforge/clone-setup.ps1"] and b"'winrm-listener.ps1'" in files["vmforge/clone-setup.ps1"]
    pfx_password = files["vmforge/winrm-pfx.txt"]
    assert pfx_password not in files["vmforge/winrm-listener.ps1"]  # read from its file, never in a script
    key, cert, _ = pkcs12.load_key_and_certificates(files["vmforge/winrm.pfx"], pfx_password)
    assert key is not None and cert is not None
    from cryptography.hazmat.primitives import serialization

    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    assert fingerprint_pem(cert_pem) == get_pin(vm_dir, PIN_WINRM)  # the clone's own, pinned
    assert SECRET_WINRM_KEY in secrets

    secret_values = [password, pfx_password.decode(), secrets[SECRET_WINRM_KEY].splitlines()[1]]
    # QEMU accepts the definition and reads the 0600 volume (libvirt relabels it for QEMU).
    start(dom)
    time.sleep(1)
    live = dom.XMLDesc(0)
    qemu_log = Path(f"/var/log/libvirt/qemu/{CLONE}.log").read_text(errors="replace")
    dom.destroy()
    assert "-blockdev" in qemu_log and f"{CLONE}-specialize.iso" in qemu_log
    logs = "".join(p.read_text(errors="replace") for p in vm_dir.logs.rglob("*") if p.is_file())
    for value in secret_values:
        for where, text in (("config", config), ("live XML", live), ("QEMU command line", qemu_log), ("logs", logs)):
            assert value not in text, f"a secret in the {where}"
        assert not any(value in argv for argv in argvs), "a secret on a command line"

    removed = detach_clone_media(system_conn, dom, vm_dir)
    assert removed == [f"drive {ROLE}", f"volume {POOL}/{volume_file.name}", f"file {local.name}"]
    assert ROLE not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert not volume_file.exists() and not local.exists()
    assert all(v.name != volume_file.name for v in domain_owner(dom).volumes)
    assert STATE_KEY not in vm_dir.load().extra  # type: ignore[union-attr]
    assert detach_clone_media(system_conn, dom, vm_dir) == []  # a re-run removes nothing

    destroy_vm(system_conn, CLONE, vm_dir)
    removed_images, kept = prune_images(system_conn)
    assert kept == [] and removed_images[-1].startswith(f"image {image.id[:16]}")
