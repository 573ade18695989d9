"""The package install flow inside the real probe guest (Linux under QEMU TCG, busybox + qemu-ga).

Everything crosses a real virtio-serial port: copies proven by the guest's busybox sha256sum,
config placed in the guest's filesystem, the install command run by the guest's shell, a second
run recognised as already installed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path, PurePosixPath

import pytest
from probe_vm import boot_probe, probe_image  # noqa: F401 - fixture

from tests.packages_support import write_shell_app
from vmforge.guest.session import Guest
from vmforge.packages.catalog import resolve_argument
from vmforge.packages.install import install_packages
from vmforge.plan import resolve_plan
from vmforge.probe.image import ProbeImage
from vmforge.spec import parse_spec
from vmforge.state import VmDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GUEST_ROOT = PurePosixPath("/tmp/vmft-pkg")


def test_install_into_the_probe_guest_and_again(probe_image: ProbeImage, tmp_path: Path) -> None:  # noqa: F811
    package = resolve_argument(str(write_shell_app(tmp_path / "pkg", Path(str(GUEST_ROOT)))))
    spec = parse_spec({"os": "probe", "vm": {"name": "vmft-pkg-probe"}}, label="test")
    plan = resolve_plan(spec)
    with boot_probe(probe_image, tmp_path) as vm:
        transport = vm.transport(command_timeout=30.0)
        transport.wait_ready(time.monotonic() + 180)
        guest = Guest(transport)
        start = time.monotonic()
        report = install_packages(spec, plan, VmDir(plan.name), guest, packages=[package],
                                  stage_root=str(GUEST_ROOT / "stage"))  # fmt: skip
        took = time.monotonic() - start
        sys.stderr.write(f"\nprobe package install (1.3 MB, 3 files): {took:.1f}s\n")
        outcome = report.outcomes[0]
        assert outcome.action == "installed"
        assert [c.split(" ")[0] for c in outcome.changed] == ["copied", "copied", "placed", "ran"]
        conf = transport.run(["cat", str(GUEST_ROOT / "etc" / "app.conf")], timeout=20)
        assert conf.stdout == b"monitors=1\nmode=1920x1080\nrates=60\n"
        installed = transport.run(["cat", str(GUEST_ROOT / "installed" / "payload.bin")], timeout=20)
        assert installed.stdout == b"payload v1\n"
        again = install_packages(spec, plan, VmDir(plan.name), guest, packages=[package],
                                 stage_root=str(GUEST_ROOT / "stage")).outcomes[0]  # fmt: skip
        assert (again.action, again.changed) == ("already installed", [])
        runs = transport.run(["cat", str(GUEST_ROOT / "install-runs")], timeout=20)
        assert runs.stdout == b"run\n"
