from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vmforge.errors import BusyError, VmforgeError
from vmforge.logs import redact
from vmforge.state import VmDir, VmState, generate_password, list_vm_dirs

FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def vm(tmp_path: Path, name: str = "w") -> VmDir:
    return VmDir(name, root=tmp_path, clock=lambda: FIXED)


def test_state_round_trip_and_steps(tmp_path: Path) -> None:
    d = vm(tmp_path)
    assert d.load() is None
    state = VmState(name="w", plan_hash="p1", spec_hash="s1")
    d.record_step(state, "answer-media", path="/x.iso")
    d.record_step(state, "answer-media")  # idempotent
    d.record_step(state, "storage")
    again = d.load()
    assert again is not None
    assert [s.name for s in again.steps] == ["answer-media", "storage"]
    assert again.steps[0].detail == {"path": "/x.iso"}
    assert again.completed("storage") and not again.completed("define")
    assert again.created_at == "2026-01-02T03:04:05+00:00"
    assert json.loads(d.state_file.read_text())["version"] == 1
    assert list_vm_dirs(tmp_path) == ["w"]


def test_damaged_state_is_a_clear_error(tmp_path: Path) -> None:
    d = vm(tmp_path)
    d.ensure()
    d.state_file.write_text("{not json")
    with pytest.raises(VmforgeError, match="not valid JSON"):
        d.load()
    d.state_file.write_text(json.dumps({"version": 99, "name": "w"}))
    with pytest.raises(VmforgeError, match="state version 99"):
        d.load()


def test_secrets_file_is_0600_and_reused(tmp_path: Path) -> None:
    d = vm(tmp_path)
    old_umask = os.umask(0)
    try:
        first = d.secret("admin_password", lambda: "Pw-first-1234")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(d.secrets_file.stat().st_mode) == 0o600
    assert d.secret("admin_password", lambda: "Pw-second-999") == first
    # Once read, the secret is redacted from anything logged or reported.
    assert redact(f"password is {first}") == "password is ********"
    assert first not in d.state_file.read_text() if d.state_file.exists() else True


def test_world_readable_secrets_are_refused(tmp_path: Path) -> None:
    d = vm(tmp_path)
    d.save_secrets({"k": "value-12345"})
    d.secrets_file.chmod(0o644)
    with pytest.raises(VmforgeError, match="readable by others"):
        d.load_secrets()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    d = vm(tmp_path)
    state = VmState(name="w")
    for i in range(5):
        d.record_step(state, f"s{i}")
    leftovers = [p.name for p in d.root.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_lock_excludes_a_second_process(tmp_path: Path) -> None:
    """A real second process tries the lock while we hold it, and is refused with our pid."""
    d = vm(tmp_path)
    probe = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from vmforge.state import VmDir
        from vmforge.errors import BusyError
        try:
            with VmDir("w", root=Path({str(tmp_path)!r})).lock():
                print("GOT")
        except BusyError as e:
            print("BUSY", e.message)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with d.lock():
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.startswith("BUSY")
        assert f"pid {os.getpid()}" in out.stdout
        with pytest.raises(BusyError), d.lock():  # also within one process
            pass
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "GOT"


def test_generated_passwords_meet_windows_complexity() -> None:
    import random

    rng = random.Random(7)
    for _ in range(50):
        pw = generate_password(rng=rng)  # type: ignore[arg-type]
        assert len(pw) == 20
        assert any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw)
        assert not set(pw) & set("<>&'\"`$;|\\ ")


def test_admin_password_is_stored_once_and_survives_rotation(tmp_path: Path) -> None:
    from vmforge.credentials import ADMIN_PASSWORD, admin_password
    from vmforge.spec import parse_spec

    d = vm(tmp_path)
    generated = admin_password(parse_spec({}, label="t"), d)
    assert len(generated) == 20 and admin_password(parse_spec({}, label="t"), d) == generated
    given = vm(tmp_path, "g")
    spec = parse_spec({"windows": {"password": "Given-Pass-77"}}, label="t")
    assert admin_password(spec, given) == "Given-Pass-77"
    given.save_secrets({ADMIN_PASSWORD: "Rotated-Pass-88"})  # what a rotation leaves behind
    assert admin_password(spec, given) == "Rotated-Pass-88"
