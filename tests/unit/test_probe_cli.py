"""``vmforge probe`` spec selection and usage errors, through the real CLI (no VM is booted).

NAME is an existing vmforge VM (its spec as ``vmforge create`` recorded it in state.json);
built-in specs come through ``--builtin`` (the same ones as ``vmforge create --builtin``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmforge.errors import UsageError, VmforgeError
from vmforge.probe.specs import BUILTIN_SPECS, recorded_spec
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir, VmState


def record(name: str, spec_data: dict[str, Any] | None, **extra: Any) -> VmDir:
    """A VM's state folder as 'vmforge create' leaves it (VMFORGE_STATE_DIR is per test)."""
    vm_dir = VmDir(name)
    state = VmState(name=name, extra=dict(extra))
    if spec_data is not None:
        state.extra["spec"] = spec_data
    vm_dir.save(state)
    return vm_dir


def test_unknown_vm_name_is_a_usage_error(vmforge: Any) -> None:
    result = vmforge("probe", "nosuch")
    assert result.code == 2
    assert "no vmforge VM named 'nosuch'" in result.stderr and "--builtin probe-demo" in result.stderr


def test_name_spec_and_builtin_exclude_each_other(vmforge: Any, tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('os = "probe"\n')
    result = vmforge("probe", "somevm", "--spec", str(spec))
    assert result.code == 2 and "give one of NAME, --spec and --builtin, not NAME and --spec" in result.stderr
    result = vmforge("probe", "--builtin", "probe-demo", "--spec", str(spec))
    assert result.code == 2 and "not --spec and --builtin" in result.stderr
    assert vmforge("probe", "--builtin", "nosuch").code == 2


def test_builtin_specs_are_shared_with_create_and_valid(vmforge: Any) -> None:
    from vmforge.cli import create_cmd

    assert create_cmd.BUILTIN_SPECS is BUILTIN_SPECS
    result = vmforge("spec", "validate", "--spec", str(BUILTIN_SPECS["probe-demo"]))
    assert result.code == 0, result.stderr


def test_recorded_spec_round_trips_with_overrides_and_masked_password() -> None:
    spec, _ = load_spec(BUILTIN_SPECS["probe-demo"])
    data = spec.to_data()
    data["windows"]["password"] = "********"  # how create records a password the user gave
    record("demo-vm", data)
    again, state = recorded_spec("demo-vm")
    assert again == spec and state.name == "demo-vm"
    bigger, _ = recorded_spec("demo-vm", Overrides(["vm.vcpus=3"]))
    assert bigger.vm.vcpus == 3


def test_vm_without_recorded_spec_and_bad_names_are_refused() -> None:
    record("clone-vm", None)
    with pytest.raises(VmforgeError, match="has no recorded spec") as info:
        recorded_spec("clone-vm")
    assert "--spec FILE" in (info.value.hint or "")
    with pytest.raises(UsageError, match="is not a VM name"):
        recorded_spec("../etc")
