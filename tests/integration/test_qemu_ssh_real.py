"""vmforge over ``qemu+ssh://`` for real: Debian's sshd on 127.0.0.1 (started as in
test_ssh_transport), a generated client key, the host key pinned in a known_hosts file of the
test's own (strict checking, root's ~/.ssh untouched), and libvirt's ssh transport running
``virt-ssh-helper`` on the "remote" side.

Through that URI: define -> media upload (StorageVolUpload over the stream API) -> start (TCG)
-> the serial console read through libvirt's console stream -> a guest reset noticed by a
lifecycle event on the remote connection -> destroy.  The local-only shortcuts must stay off:
no serial log file, no local pool checks, the /dev/shm file left to the remote host.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from lxml import etree
from pools import remove_pool

from tests.integration.conftest import SYSTEM_URI, undefine_if_present
from tests.integration.test_ssh_transport import start_sshd, stop_sshd
from vmforge.domain.events import StopWatch, ensure_event_loop
from vmforge.domain.lifecycle import provision, wait_stopped
from vmforge.domain.media import shared_volume_name
from vmforge.domain.shapes import Shape
from vmforge.guest.console import follow_console
from vmforge.hashing import sha256_file
from vmforge.host.facts import read_host_facts
from vmforge.libvirt_conn import connect
from vmforge.ownership import domain_owner, is_owned_pool_dir
from vmforge.plan import resolve_plan
from vmforge.spec import parse_spec
from vmforge.state import VmDir
from vmforge.storage import lookup_pool

pytestmark = pytest.mark.integration

NAME = "vmft-s2d-ssh"
POOL = "vmft-s2d-sshpool"
SHM = "vmft-s2d-ssh-shm"
POOL_DIR = Path("/var/tmp/vmft-s2d-sshpool")  # QEMU (libvirt-qemu) must reach it; not below 0700 tmp


@pytest.fixture
def remote_uri(tmp_path: Path) -> Iterator[str]:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    server = start_sshd(tmp_path / "sshd", key.with_suffix(".pub").read_text().strip())
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_file.with_suffix('.pub').read_text()}")
    # libvirt's `command=` names the ssh binary; this one pins the test's host key.
    ssh = tmp_path / "ssh"
    ssh.write_text(
        f"#!/bin/sh\nexec ssh -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
        f'-o StrictHostKeyChecking=yes "$@"\n'
    )
    ssh.chmod(0o755)
    uri = f"qemu+ssh://root@127.0.0.1:{server.port}/system?keyfile={key}&no_tty=1&command={ssh}"
    try:
        yield uri
    finally:
        stop_sshd(server)
        conn = libvirt.open(SYSTEM_URI)
        try:
            undefine_if_present(conn, NAME)
            remove_pool(conn, POOL)
        finally:
            conn.close()
        shutil.rmtree(POOL_DIR, ignore_errors=True)
        Path("/dev/shm", SHM).unlink(missing_ok=True)


def make_iso(path: Path, fill: bytes, blocks: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * 2048 * blocks)
    return path


def test_define_upload_start_console_stop_destroy_over_ssh(remote_uri: str, tmp_path: Path, vmforge: Any) -> None:
    ensure_event_loop()  # as in a vmforge process that waited before: event loop + console stream
    began = time.monotonic()
    conn = connect(remote_uri)
    opened = time.monotonic() - began
    try:
        assert conn.getURI() == remote_uri  # what vmforge's is_local_uri checks see
        spec = parse_spec(
            {
                "vm": {
                    "name": NAME,
                    "connect": remote_uri,
                    "virt_type": "qemu",
                    "memory": "512MiB",
                    "vcpus": 1,
                    "firmware": "uefi",
                    "tpm": "off",
                },
                "windows": {"family": "10", "iso": str(make_iso(tmp_path / "installer.iso", b"I", 2048))},
                "virtio_win": {"iso": str(make_iso(tmp_path / "virtio-win.iso", b"V"))},
                "disk": {"size": "64MiB", "pool": POOL, "pool_dir": str(POOL_DIR)},
                "network": {"type": "none"},
                "ivshmem": {"enabled": True, "name": SHM},
            },
            label="ssh",
        )
        plan = resolve_plan(spec, host=read_host_facts(conn, remote_uri, "qemu"))
        assert plan.serial_log is None  # remote: the serial port is read through the console stream
        make_iso(plan.media.answer_iso, b"A")  # type: ignore[union-attr] # the media step's output
        vm_dir = VmDir(NAME)  # where the CLI looks (the test's state dir)
        assert vm_dir.root == plan.vm_dir

        began = time.monotonic()
        dom = provision(conn, plan, Shape.INSTALL, vm_dir=vm_dir)
        provisioned = time.monotonic() - began
        # The pool was built by libvirt on the "remote" host; nothing was checked or marked from here.
        assert POOL_DIR.is_dir() and not is_owned_pool_dir(POOL_DIR)
        tag = domain_owner(dom)
        assert tag is not None
        answer = plan.media.answer_iso  # type: ignore[union-attr]
        expected = {
            shared_volume_name(sha256_file(tmp_path / "installer.iso")): tmp_path / "installer.iso",
            shared_volume_name(sha256_file(tmp_path / "virtio-win.iso")): tmp_path / "virtio-win.iso",
            f"{NAME}-answer.iso": answer,
        }
        keys = {ref.name: Path(ref.key) for ref in tag.volumes}
        for name, source in expected.items():  # uploaded over ssh, byte for byte
            assert keys[name].read_bytes() == source.read_bytes(), name
        config = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        assert config.find("devices/serial/log") is None  # no log file on a remote host

        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        with follow_console(conn, dom) as console:
            began = time.monotonic()
            dom.resume()
            deadline = began + 300
            while b"BdsDxe" not in console.raw and time.monotonic() < deadline:  # OVMF's boot manager
                time.sleep(0.5)
            first_text = time.monotonic() - began
            assert b"BdsDxe" in console.raw, (console.error, bytes(console.raw[-500:]))

            # The watch subscribes over its own qemu+ssh connection before the guest "reboots"
            # (on_reboot=destroy stops the install shape, as at Setup's first reboot).
            with StopWatch(dom, safety_every=3600) as watch:
                assert watch.uri == remote_uri and watch.mechanism == "events"
                dom.reset()
                stopped = watch.wait(180)
        assert stopped is not None and (stopped.noticed, stopped.mechanism) == ("event", "events")
        assert wait_stopped(dom, 0).noticed == "already"

        destroyed = vmforge("destroy", NAME, "--connect", remote_uri, "--json")  # the real CLI over ssh
        assert destroyed.code == 0, destroyed.stderr
        report = destroyed.json()
        assert f"domain {NAME}" in report["removed"]
        assert sorted(r for r in report["removed"] if r.startswith("volume")) == sorted(
            f"volume {POOL}/{ref.name}" for ref in tag.volumes if not ref.name.endswith(".part")
        )  # the upload parts of the shared media were deleted once copied
        assert report["kept"] == [f"shared memory /dev/shm/{SHM} on the remote host (remove it there)"]
        assert not vm_dir.root.exists()
    finally:
        conn.close()
    local = libvirt.open(SYSTEM_URI)
    try:
        with pytest.raises(libvirt.libvirtError):
            local.lookupByName(NAME)
        assert lookup_pool(local, POOL).listAllVolumes(0) == []  # type: ignore[union-attr]
    finally:
        local.close()
    print(  # measured figures (pytest -s)
        f"\nqemu+ssh: connect {opened:.2f}s, provision+upload {provisioned:.2f}s "
        f"({4 * 1024 + 128 + 128} KiB of media), console text after {first_text:.1f}s"
    )
