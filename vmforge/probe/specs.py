"""Where ``vmforge probe`` gets its spec: ``--spec FILE``, a built-in one (``--builtin``, shared
with ``vmforge create --builtin``), or NAME - an existing vmforge VM, probed with the spec it was
created with (``vmforge create`` records it, secrets masked, in the VM's state.json).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from vmforge.errors import UsageError, VmforgeError
from vmforge.spec import Overrides, Spec, parse_spec
from vmforge.state import VmDir, VmState

BUILTIN_SPECS = {"probe-demo": Path(__file__).resolve().parent / "demo-spec.toml"}
RECORDED_SPEC = "spec"  # the state.json "extra" key create writes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def recorded_spec(name: str, overrides: Overrides | None = None, root: Path | None = None) -> tuple[Spec, VmState]:
    """The spec VM ``name`` was created with (``--set`` overrides applied) and its state."""
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a VM name", hint="vmforge probe NAME | --spec FILE | --builtin probe-demo")
    vm_dir = VmDir(name, root=root)
    state = vm_dir.load()
    if state is None:
        raise UsageError(
            f"no vmforge VM named {name!r} ({vm_dir.state_file} does not exist)",
            hint="'vmforge list' shows vmforge's VMs; without a VM: vmforge probe --spec FILE or --builtin "
            + " | ".join(BUILTIN_SPECS),
        )
    data = state.extra.get(RECORDED_SPEC)
    if not isinstance(data, dict):
        raise VmforgeError(
            f"VM {name!r} has no recorded spec in {vm_dir.state_file} (it was not made by 'vmforge create', "
            "or by an older vmforge)",
            hint=f"give its spec file: vmforge probe --spec FILE (with vm.name = {name!r})",
        )
    data = copy.deepcopy(data)
    windows = data.get("windows")
    if isinstance(windows, dict):
        windows.pop("password", None)  # recorded masked; the probe needs none
    origins = (overrides or Overrides()).apply(data)
    return parse_spec(data, label=f"{vm_dir.state_file} (recorded spec)", origins=origins), state
