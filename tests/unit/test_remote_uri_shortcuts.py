"""What vmforge may only do on the libvirt host itself is switched off for remote URIs (checked
without a daemon; tests/integration/test_qemu_ssh_real.py runs the same over a real qemu+ssh://)."""

from __future__ import annotations

import pytest

from tests.goldencases import DOMCAPS
from vmforge.domain.build import build_domain
from vmforge.domain.lifecycle import check_startable
from vmforge.domain.shapes import Shape
from vmforge.errors import VmforgeError
from vmforge.host.domcaps import parse_domcaps
from vmforge.plan import HostFacts, Plan, is_local_uri, resolve_plan
from vmforge.spec import parse_spec

SSH = "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k&no_tty=1&command=/tmp/ssh"


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu:///session", True),
        (SSH, False),
        ("qemu+ssh://host/system", False),
        ("qemu+tcp://host/system", False),
        ("qemu+unix:///system?socket=/run/x", True),
    ],
)
def test_local_or_remote(uri: str, local: bool) -> None:
    assert is_local_uri(uri) is local


def remote_plan(**ivshmem: object) -> Plan:
    spec = parse_spec(
        {
            "vm": {"name": "r", "connect": SSH, "firmware": "uefi", "tpm": "off"},
            "windows": {"family": "10"},
            "ivshmem": {"enabled": True, **ivshmem},
        },
        label="t",
    )
    # Host facts as read_host_facts gives them for a remote URI: no sysfs, no firmware descriptors.
    return resolve_plan(spec, env={"HOME": "/home/u"}, host=HostFacts(parse_domcaps(DOMCAPS.read_text()), None, None))


def test_remote_plan_has_no_local_files() -> None:
    plan = remote_plan()
    assert plan.system_uri and plan.serial_log is None and plan.disk.pool_dir is None
    assert plan.uefi is not None and plan.uefi.nvram_template is None  # libvirt fills it on that host
    root = build_domain(plan, Shape.INSTALL).to_element()
    assert root.find("devices/serial/log") is None and root.find("devices/console") is not None


def test_doorbell_is_refused_for_a_remote_host() -> None:
    plan = remote_plan(model="doorbell")
    with pytest.raises(VmforgeError, match="must run on the libvirt host") as caught:
        check_startable(plan)
    assert "ivshmem.model = 'plain'" in str(caught.value.hint)
