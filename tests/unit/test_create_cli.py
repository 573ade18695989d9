"""'vmforge create' and the everyday commands: usage errors and state-only commands (no daemon)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vmforge.state import VmDir


def test_restart_and_force_exclude_each_other(vmforge: Any) -> None:
    result = vmforge("create", "vm1", "--restart", "--force", "--json")
    assert result.code == 2
    assert json.loads(result.stdout)["error"]["message"] == "--restart and --force exclude each other"


def test_builtin_and_spec_exclude_each_other(vmforge: Any, tmp_path: Path) -> None:
    result = vmforge("create", "--builtin", "probe-demo", "--spec", str(tmp_path / "x.toml"))
    assert result.code == 2
    assert "either --builtin or --spec" in result.stderr


def test_creds_and_logs_of_an_unknown_vm(vmforge: Any) -> None:
    for command in ("creds", "logs"):
        result = vmforge(command, "nosuchvm")
        assert result.code == 2, result.stderr
        assert "no state for VM 'nosuchvm'" in result.stderr


def test_creds_prints_the_stored_secrets_and_logs_the_serial_tail(vmforge: Any, isolated_env: Path) -> None:
    vm_dir = VmDir("vm1")
    vm_dir.save_secrets({"admin_password": "Pw-123456789abcdefg"})
    vm_dir.logs.mkdir(parents=True, exist_ok=True)
    (vm_dir.logs / "serial0.log").write_bytes(b"line1\nVMFORGE-PHASE probe-ready\n")
    creds = vmforge("creds", "vm1")
    assert creds.code == 0 and creds.stdout == "admin_password: Pw-123456789abcdefg\n"
    logs = vmforge("logs", "vm1", "--tail", "1")
    assert logs.stdout == "VMFORGE-PHASE probe-ready\n"
    assert "Pw-123456789abcdefg" not in logs.stdout + logs.stderr
