"""Smoke test of the real probe guest: the cached image boots under QEMU (TCG) and answers.

One guest is booted for the module (a SATA CD with vmforge-written answer media carrying a
package, and a blank virtio disk), then: the agent over a real virtio-serial port, the CD
mounted by the guest kernel and the package files checked there against SHA256SUMS, a multi-MB
copy verified by the guest's own sha256sum, phase markers read from the real serial output, the
scratch disk formatted once, and a reboot detected by a new boot_id with the disk's data kept.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from probe_vm import ProbeVm, boot_probe, probe_image  # noqa: F401 - fixture

from tests.packages_support import write_shell_app
from vmforge.guest.agent import AgentTransport
from vmforge.guest.os_linux import LinuxAdapter
from vmforge.guest.session import Guest
from vmforge.media.answer_iso import MediaContent, write_answer_iso
from vmforge.media.package_media import package_media_files
from vmforge.packages.catalog import resolve_argument
from vmforge.packages.preflight import Target, check_package
from vmforge.probe.image import ProbeImage
from vmforge.spec import parse_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUTOUNATTEND = b"<?xml version='1.0'?>\n<unattend xmlns='urn:schemas-microsoft-com:unattend'/>\n"
DRIVER_NOTE = b"viostor goes here\n"


def make_answer_iso(path: Path, work: Path) -> None:
    """vmforge's own answer-media writer, with a package on it (a multi-block binary included)."""
    package = resolve_argument(str(write_shell_app(work / "shellapp-src", work / "guest-root")))
    checked = check_package(package, parse_spec({"os": "probe", "vm": {"name": "probe-boot"}}, label="test"),
                            Target("linux", "amd64"))  # fmt: skip
    files: dict[str, MediaContent] = {"autounattend.xml": AUTOUNATTEND, "$WinPEDriver$/readme.txt": DRIVER_NOTE}
    files.update(package_media_files([checked]))
    write_answer_iso(path, files)


class Booted:
    def __init__(self, vm: ProbeVm, transport: AgentTransport, boot_to_agent: float) -> None:
        self.vm = vm
        self.transport = transport
        self.guest = Guest(transport, LinuxAdapter())
        self.boot_to_agent = boot_to_agent


@pytest.fixture(scope="module")
def booted(probe_image: ProbeImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:  # noqa: F811
    work = tmp_path_factory.mktemp("probe-boot")
    iso = work / "answers.iso"
    make_answer_iso(iso, work)
    disk = work / "scratch.raw"
    with disk.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    with boot_probe(probe_image, work, cdrom=iso, disk=disk) as vm:
        transport = vm.transport(command_timeout=20.0)
        transport.wait_ready(time.monotonic() + 180)
        boot_to_agent = time.monotonic() - vm.started
        sys.stderr.write(f"\nprobe boot-to-agent: {boot_to_agent:.1f}s (TCG)\n")
        yield Booted(vm, transport, boot_to_agent)


def test_boot_to_agent_is_measured(booted: Booted) -> None:
    assert 0 < booted.boot_to_agent < 180
    info = booted.transport.os_info()
    assert (info.family, info.id) == ("linux", "vmforge-probe")


def test_exec_in_the_guest(booted: Booted) -> None:
    result = booted.transport.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=30)
    assert (result.rc, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    lines = booted.transport.run(["seq", "1", "200000"], timeout=60).stdout
    assert lines == "".join(f"{i}\n" for i in range(1, 200001)).encode()


def test_phase_markers_arrive_on_the_serial_port(booted: Booted) -> None:
    ready = booted.vm.wait_phase("probe-ready", timeout=60)
    phases = [e.phase for e in booted.vm.phases() if e.boot == 0]
    assert phases[:3] == ["probe-init", "probe-modules", "probe-media"]
    media = next(e for e in booted.vm.phases() if e.phase == "probe-media")
    assert media.fields == {"cds": "1", "mounted": "1"}
    assert ready.timestamp >= media.timestamp
    # The guest's own emitter, run through the agent, reaches the host through the serial port.
    result = booted.transport.run(["vmforge-phase", "pe-start", "build=22631"], timeout=30)
    assert result.rc == 0, result.stderr
    event = booted.vm.wait_phase("pe-start", timeout=30)
    assert event.fields == {"build": "22631"}
    bad = booted.transport.run(["vmforge-phase", "Bad Phase"], timeout=30)
    assert bad.rc == 2


def test_answer_media_is_mounted_by_the_guest_kernel(booted: Booted) -> None:
    mounts = booted.transport.run(["cat", "/proc/mounts"], timeout=30).stdout.decode()
    assert "/dev/sr0 /media/sr0 udf ro" in mounts
    files = booted.transport.run(["find", "/media/sr0", "-type", "f"], timeout=30).stdout.decode().split()
    assert sorted(files) == [
        "/media/sr0/$WinPEDriver$/readme.txt",
        "/media/sr0/autounattend.xml",
        "/media/sr0/vmforge/packages/SHA256SUMS",
        "/media/sr0/vmforge/packages/shellapp/big.bin",
        "/media/sr0/vmforge/packages/shellapp/bin/payload.bin",
        "/media/sr0/vmforge/stage-packages.ps1",
    ]
    assert booted.transport.run(["cat", "/media/sr0/autounattend.xml"], timeout=30).stdout == AUTOUNATTEND
    # The packages read back through the guest kernel's UDF driver match SHA256SUMS (the
    # manifest's hashes), and a staged copy made from them in the guest does too.
    check = booted.transport.run(["sh", "-c", "cd /media/sr0/vmforge/packages && sha256sum -c SHA256SUMS"],
                                 timeout=60)  # fmt: skip
    assert check.rc == 0, check.stdout + check.stderr
    assert check.stdout.decode().split() == ["shellapp/big.bin:", "OK", "shellapp/bin/payload.bin:", "OK"]
    staged = booted.transport.run(
        ["sh", "-c", "mkdir -p /tmp/stage && cp -r /media/sr0/vmforge/packages/. /tmp/stage/ "
         "&& cd /tmp/stage && sha256sum -c SHA256SUMS"], timeout=60,
    )  # fmt: skip
    assert staged.rc == 0, staged.stdout + staged.stderr


def test_multi_megabyte_copy_verified_in_the_guest(booted: Booted, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(random.Random(5).randbytes(4 * 1024 * 1024 + 17))
    started = time.monotonic()
    digest = booted.guest.copy_in(source, "/tmp/payload.bin")
    upload = time.monotonic() - started
    assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    back = tmp_path / "back.bin"
    assert booted.guest.copy_out("/tmp/payload.bin", back) == digest
    assert back.read_bytes() == source.read_bytes()
    sys.stderr.write(f"\nprobe agent upload: {source.stat().st_size / upload / 1e6:.1f} MB/s (TCG, verified)\n")


def test_reboot_is_detected_and_the_scratch_disk_keeps_its_data(booted: Booted) -> None:
    first = booted.vm.wait_phase("probe-disk", timeout=60)
    assert first.fields == {"dev": "vda", "formatted": "yes", "mounted": "yes"}
    marker = b"written before the reboot\n"
    assert booted.transport.run(["sh", "-c", "cat > /mnt/disk/marker; sync"], stdin=marker, timeout=30).rc == 0
    before = booted.guest.boot_id()
    booted.vm.phases()
    boot_before = booted.vm.reader.boot
    after = booted.guest.reboot(time.monotonic() + 180)
    assert after != before
    second = booted.vm.wait_phase("probe-disk", timeout=60, after_boot=boot_before)
    assert second.fields == {"dev": "vda", "formatted": "no", "mounted": "yes"}
    assert booted.transport.run(["cat", "/mnt/disk/marker"], timeout=30).stdout == marker
