"""Opt-in live test: 'vmforge create' installs real Windows from the ISO named by
VMFORGE_TEST_WINDOWS_ISO, then 'status' and 'destroy'.  Needs KVM (an unattended install under
TCG takes many hours); skips with the reason when the variable is unset or KVM is unusable.

    VMFORGE_TEST_WINDOWS_ISO=/isos/Win11_24H2_English_x64.iso \\
    [VMFORGE_TEST_VIRTIO_WIN_ISO=/isos/virtio-win.iso] [VMFORGE_TEST_WINDOWS_EDITION="Windows 11 Pro"] \\
        .venv/bin/python -m pytest -q tests/integration/test_create_windows_live.py

Real everything: Setup, its phase markers, post-install, the guest agent, media detach,
password rotation, the final shape; destroy must leave no domain, volume, NVRAM or TPM state.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import libvirt
import pytest
from create_probe import domains, force_cleanup, run, volumes

from vmforge.create.steps import STEPS

pytestmark = pytest.mark.integration
NAME = "vmft-s2c-live"
ISO = os.environ.get("VMFORGE_TEST_WINDOWS_ISO", "")


KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


def _kvm_problem(conn: object) -> str | None:
    """Why KVM cannot run this test's guest, or None: /dev/kvm must open and create a VM, and
    libvirt must offer the kvm domain type."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"/dev/kvm cannot be opened ({exc.strerror})"
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return "/dev/kvm speaks an unknown KVM API version"
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as exc:
        return f"/dev/kvm refuses to create a VM ({exc.strerror})"
    finally:
        os.close(fd)
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)  # type: ignore[attr-defined]
    except libvirt.libvirtError as exc:
        return f"libvirt cannot use KVM here ({str(exc).strip()})"
    return None


def test_live_windows_create_status_destroy(tmp_path: Path) -> None:
    if not ISO:
        pytest.skip("opt-in: set VMFORGE_TEST_WINDOWS_ISO to a Windows installer ISO (and have KVM)")
    if not Path(ISO).is_file():
        pytest.fail(f"VMFORGE_TEST_WINDOWS_ISO={ISO} is not a file")
    conn = libvirt.open("qemu:///system")
    try:
        problem = _kvm_problem(conn)
        if problem:
            pytest.skip(f"needs KVM: {problem}")
        state = tmp_path / "state"
        lines = [
            "[vm]",
            f'name = "{NAME}"',
            'virt_type = "kvm"',
            'memory = "4GiB"',
            "vcpus = 2",
            "[disk]",
            'size = "64GiB"',
            "[network]",
            'type = "none"',
            "[windows]",
            f'iso = "{ISO}"',
            "[remote]",
            'channels = ["agent"]',
            "[timeouts]",
            'install = "3h"',
        ]
        if os.environ.get("VMFORGE_TEST_WINDOWS_EDITION"):
            lines.insert(lines.index("[remote]"), f'edition = "{os.environ["VMFORGE_TEST_WINDOWS_EDITION"]}"')
        if os.environ.get("VMFORGE_TEST_VIRTIO_WIN_ISO"):
            lines += ["[virtio_win]", f'iso = "{os.environ["VMFORGE_TEST_VIRTIO_WIN_ISO"]}"']
        spec = tmp_path / "win.toml"
        spec.write_text("\n".join(lines) + "\n")

        created = run(state, "create", "--spec", str(spec), "--json", timeout=4 * 3600)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
        result = json.loads(created.stdout)
        statuses = {s["name"]: s["status"] for s in result["steps"]}
        assert list(statuses) == list(STEPS)
        for step in ("setup-phases", "postinstall", "guest-channel", "verify", "detach-media", "final-shape"):
            assert statuses[step] == "done", step
        assert "postinstall-done" in [p["phase"] for p in result["phases"]]

        status = run(state, "status", NAME, "--spec", str(spec), "--json")
        assert status.returncode == 0, status.stderr
        (vm,) = json.loads(status.stdout)["vms"]
        assert vm["domain_state"] == "running"
        assert vm["channels"]["org.qemu.guest_agent.0"] == "connected"
        dom = conn.lookupByName(NAME)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert "device='cdrom'" not in xml and "<on_reboot>restart</on_reboot>" in xml
        nvram = xml.split("<nvram")[1].split(">")[1].split("<")[0] if "<nvram" in xml else None
        uuid = dom.UUIDString()

        gone = run(state, "destroy", NAME, "--spec", str(spec), "--json")
        assert gone.returncode == 0, gone.stderr
        assert domains(conn, NAME) == [] and volumes(conn, NAME) == []
        assert nvram is None or not Path(nvram).exists()
        assert not Path(f"/var/lib/libvirt/swtpm/{uuid}").exists()
    finally:
        if ISO:
            force_cleanup(conn, NAME, tmp_path / "state")
        conn.close()
