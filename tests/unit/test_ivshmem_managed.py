"""What vmforge's managed ivshmem server reads: the domain's doorbell device, QEMU's group, the size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.goldencases import DOMCAPS, FIRMWARE
from vmforge.domain.build import build_domain
from vmforge.domain.lifecycle import check_startable
from vmforge.domain.shapes import Shape
from vmforge.errors import VmforgeError
from vmforge.host.domcaps import parse_domcaps
from vmforge.ivshmem.managed import STATE_KEY, DoorbellDevice, _size, doorbell_device, qemu_group
from vmforge.plan import HostFacts, Plan, resolve_plan
from vmforge.spec import parse_spec
from vmforge.state import VmState

HOST = HostFacts(caps=parse_domcaps(DOMCAPS.read_text()), firmware_dirs=(FIRMWARE,))


def _plan(model: str, connect: str = "qemu:///system") -> Plan:
    spec = parse_spec(
        {
            "os": "probe",
            "vm": {"name": "door", "connect": connect},
            "display": {"resolution": "1280x720"},
            "ivshmem": {"enabled": True, "model": model},
        },
        label="test",
    )
    return resolve_plan(spec, env={"HOME": "/home/x"}, host=HOST)


def test_the_doorbell_device_comes_from_vmforges_own_xml() -> None:
    plan = _plan("doorbell")
    xml = build_domain(plan, Shape.FINAL).to_xml()
    assert doorbell_device(xml) == DoorbellDevice("vmforge-door", Path("/run/vmforge/vmforge-door.sock"), 1)
    plain = build_domain(_plan("plain"), Shape.FINAL).to_xml()
    assert doorbell_device(plain) is None


CAPS = """<capabilities><host>
  <secmodel><model>none</model><doi>0</doi></secmodel>
  <secmodel><model>dac</model><doi>0</doi>
    <baselabel type='kvm'>+64055:+64055</baselabel><baselabel type='qemu'>+64055:+64055</baselabel>
  </secmodel></host></capabilities>"""


def test_qemus_group_is_the_dac_base_label() -> None:
    assert qemu_group(CAPS) == 64055
    assert qemu_group("<capabilities><host><secmodel><model>none</model></secmodel></host></capabilities>") is None
    assert qemu_group(CAPS.replace("+64055:+64055", "+0:+0")) == 0


def test_the_size_comes_from_the_plan_then_the_record_then_the_recorded_plan() -> None:
    plan = _plan("doorbell")
    assert plan.ivshmem is not None
    device = doorbell_device(build_domain(plan, Shape.FINAL).to_xml())
    assert device is not None
    state = VmState(name="door")
    assert _size(state, device, plan.ivshmem) == 16 * 1024**2
    # another device's plan does not count
    other = dataclasses.replace(plan.ivshmem, name="vmforge-other", size=1)
    with pytest.raises(VmforgeError, match="not recorded in the state of VM 'door'"):
        _size(state, device, other)
    state.extra["plan"] = {"ivshmem": {"name": "vmforge-door", "size": 32 * 1024**2}}
    assert _size(state, device, None) == 32 * 1024**2
    state.extra[STATE_KEY] = {"shm": "/dev/shm/vmforge-door", "size": 64 * 1024**2}
    assert _size(state, device, None) == 64 * 1024**2


def test_doorbell_is_refused_only_on_a_remote_host() -> None:
    check_startable(_plan("doorbell"))  # the server is started with the domain now
    check_startable(_plan("plain", "qemu+ssh://host/system"))
    with pytest.raises(VmforgeError, match="runs the ivshmem server on this machine only"):
        check_startable(_plan("doorbell", "qemu+ssh://host/system"))
