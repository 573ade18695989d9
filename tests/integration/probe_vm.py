"""Boot the probe image under plain QEMU (TCG) for tests: no libvirt, so no second domain builder.

``vmforge probe`` boots from vmforge's own domain XML (test_probe_libvirt.py); these tests
exercise the image, its init and the agent protocol over a real virtio-serial port without a
daemon (reboots, scratch disk formatting, the agent's Unix-socket protocol).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vmforge import paths
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import UnixSocketChannel
from vmforge.guest.console import follow_log_file
from vmforge.media.phases import PhaseEvent, PhaseReader
from vmforge.probe.image import ProbeImage, ensure_probe_image
from vmforge.probe.transform import TCG_CPU

# The probe image is cached per machine, not per test: the suite downloads the Debian packages
# once.  Read now, before the autouse fixture points XDG_CACHE_HOME at a per-test folder.
MACHINE_CACHE = Path(os.environ.get("VMFORGE_TEST_CACHE") or paths.cache_home())


@pytest.fixture(scope="session")
def probe_image() -> ProbeImage:
    return ensure_probe_image(MACHINE_CACHE)


@dataclass
class ProbeVm:
    proc: subprocess.Popen[bytes]
    agent_socket: Path
    serial_log: Path
    started: float
    reader: PhaseReader = field(default_factory=PhaseReader)
    _offset: int = 0

    def transport(self, **kwargs: float) -> AgentTransport:
        return AgentTransport(UnixSocketChannel(self.agent_socket), **kwargs)  # type: ignore[arg-type]

    def phases(self) -> list[PhaseEvent]:
        """Feed what the serial log gained since the last call; all events so far."""
        self._offset = follow_log_file(self.serial_log, self.reader, self._offset)
        return list(self.reader.events)

    def wait_phase(self, phase: str, timeout: float, after_boot: int = -1) -> PhaseEvent:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.phases():
                if event.phase == phase and event.boot > after_boot:
                    return event
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {phase} marker within {timeout}s; serial:\n{self.serial_tail()}")
            time.sleep(0.1)

    def serial_tail(self, lines: int = 40) -> str:
        text = self.serial_log.read_bytes().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def boot_probe(
    image: ProbeImage,
    workdir: Path,
    *,
    cdrom: Path | None = None,
    disk: Path | None = None,
    memory_mb: int = 512,
) -> Iterator[ProbeVm]:
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu, "qemu-system-x86_64 is missing: install Debian's qemu-system-x86 (scripts/setup-host)"
    agent_socket = workdir / "qga.sock"
    serial_log = workdir / "serial.log"
    serial_log.write_bytes(b"")
    extra_cmdline = []
    argv = [
        qemu,
        "-accel", "tcg",
        "-M", "q35",
        "-cpu", TCG_CPU,  # the probe transform's CPU under TCG
        "-smp", "1",
        "-m", str(memory_mb),
        "-nodefaults",
        "-display", "none",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-serial", f"file:{serial_log}",
        "-chardev", f"socket,id=qga,path={agent_socket},server=on,wait=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtserialport,bus=vser0.0,chardev=qga,name=org.qemu.guest_agent.0",
    ]  # fmt: skip
    if cdrom is not None:
        argv += ["-drive", f"file={cdrom},if=none,id=cd0,media=cdrom,readonly=on,format=raw"]
        argv += ["-device", "ide-cd,drive=cd0,bus=ide.0"]
    if disk is not None:
        argv += ["-drive", f"file={disk},if=none,id=disk0,format=raw", "-device", "virtio-blk-pci,drive=disk0"]
        extra_cmdline.append("vmforge.disk=vda")
    cds = 0 if cdrom is None else 1
    extra_cmdline += [f"vmforge.cds={cds}", f"vmforge.sata={cds}"]  # as vmforge's domain XML says it
    argv += ["-append", image.cmdline_with(*extra_cmdline)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not agent_socket.exists():
            if proc.poll() is not None:
                raise AssertionError(f"QEMU exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            assert time.monotonic() < deadline, "QEMU did not create the agent socket"
            time.sleep(0.02)
        yield ProbeVm(proc, agent_socket, serial_log, started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
