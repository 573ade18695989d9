"""Per-VM state on the host: ``$STATE/vms/<name>/``.

Layout::

    state.json     versioned: steps completed, plan and spec hashes (no secrets)
    secrets.json   0600: generated passwords and credentials
    lock           held (flock) by the one command working on this VM
    logs/          per-command logs (secrets redacted)
    media/         generated media (answer ISO, ...)

Writes are atomic (temporary file, fsync, rename), so an interrupted command never leaves a
half-written file; a re-run reads the last complete state and continues.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets as _secrets
import shutil
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vmforge import __version__
from vmforge.errors import BusyError, VmforgeError
from vmforge.logs import register_secret
from vmforge.paths import state_root

STATE_VERSION = 1

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StepRecord:
    name: str
    completed_at: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class VmState:
    """What vmforge knows about one VM between commands (never secrets)."""

    name: str
    plan_hash: str | None = None
    spec_hash: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    created_at: str | None = None
    updated_at: str | None = None
    vmforge_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def completed(self, step: str) -> bool:
        return any(record.name == step for record in self.steps)

    def last_step(self) -> str | None:
        return self.steps[-1].name if self.steps else None

    def to_data(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "plan_hash": self.plan_hash,
            "spec_hash": self.spec_hash,
            "steps": [{"name": s.name, "completed_at": s.completed_at, "detail": s.detail} for s in self.steps],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "vmforge_version": self.vmforge_version,
            "extra": self.extra,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any], source: Path) -> VmState:
        version = data.get("version")
        if version != STATE_VERSION:
            raise VmforgeError(
                f"{source}: state version {version!r} is not supported (this vmforge reads {STATE_VERSION})",
                hint="use the vmforge version that created this VM, or destroy and re-create it",
            )
        try:
            return cls(
                name=str(data["name"]),
                plan_hash=data.get("plan_hash"),
                spec_hash=data.get("spec_hash"),
                steps=[
                    StepRecord(str(s["name"]), str(s["completed_at"]), dict(s.get("detail", {})))
                    for s in data.get("steps", [])
                ],
                created_at=data.get("created_at"),
                updated_at=data.get("updated_at"),
                vmforge_version=str(data.get("vmforge_version", "")),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VmforgeError(
                f"{source} is damaged ({exc})",
                hint="move it aside; 'vmforge destroy' and a new create start clean",
            ) from None


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow it
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def generate_password(length: int = 20, rng: _secrets.SystemRandom | None = None) -> str:
    """A password Windows accepts (upper, lower, digit, symbol) with no XML/shell-special chars."""
    rng = rng or _secrets.SystemRandom()
    symbols = "-_.+=@%"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        candidate = "".join(rng.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(c in symbols for c in candidate)
        ):
            return candidate


class VmDir:
    """One VM's state folder.  Cheap to construct; touches the disk only when asked."""

    def __init__(self, name: str, root: Path | None = None, clock: Clock = utc_now) -> None:
        self.name = name
        self.root = (root or state_root()) / "vms" / name
        self.clock = clock

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def media(self) -> Path:
        return self.root / "media"

    def exists(self) -> bool:
        return self.state_file.exists()

    def ensure(self) -> None:
        for path in (self.root, self.logs, self.media):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    # -- state -------------------------------------------------------------------------------

    def load(self) -> VmState | None:
        try:
            raw = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise VmforgeError(
                f"{self.state_file} is not valid JSON ({exc.msg} at line {exc.lineno})",
                hint="move it aside; 'vmforge destroy' and a new create start clean",
            ) from None
        return VmState.from_data(data, self.state_file)

    def save(self, state: VmState) -> None:
        self.ensure()
        now = self.clock().isoformat(timespec="seconds")
        state.created_at = state.created_at or now
        state.updated_at = now
        text = json.dumps(state.to_data(), indent=2, sort_keys=True) + "\n"
        write_atomic(self.state_file, text.encode(), 0o644)

    def record_step(self, state: VmState, step: str, **detail: Any) -> None:
        """Mark ``step`` done (idempotent) and persist at once."""
        if not state.completed(step):
            now = self.clock().isoformat(timespec="seconds")
            state.steps.append(StepRecord(step, now, dict(detail)))
        self.save(state)

    # -- secrets -----------------------------------------------------------------------------

    def load_secrets(self) -> dict[str, str]:
        try:
            raw = self.secrets_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        mode = self.secrets_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise VmforgeError(
                f"{self.secrets_file} is readable by others (mode {mode:o})",
                hint=f"chmod 600 {self.secrets_file} and rotate the credentials it holds",
            )
        data = json.loads(raw)
        values = {str(k): str(v) for k, v in data.items()}
        for value in values.values():
            register_secret(value)
        return values

    def save_secrets(self, values: Mapping[str, str]) -> None:
        self.ensure()
        for value in values.values():
            register_secret(value)
        text = json.dumps(dict(values), indent=2, sort_keys=True) + "\n"
        write_atomic(self.secrets_file, text.encode(), 0o600)

    def secret(self, key: str, make: Callable[[], str]) -> str:
        """The stored secret ``key``, made (and saved) on first use so re-runs reuse it."""
        values = self.load_secrets()
        if key not in values:
            values[key] = make()
            self.save_secrets(values)
        return values[key]

    # -- lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this VM's exclusive lock; fail at once (naming the holder) if another has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / "lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise BusyError(
                    f"VM '{self.name}' is busy: another vmforge command (pid {holder}) is working on it",
                    hint="wait for it to finish, or stop it; the lock is released when it exits",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def remove(self) -> None:
        """Delete the whole folder (secrets included)."""
        shutil.rmtree(self.root, ignore_errors=True)


def list_vm_dirs(root: Path | None = None) -> list[str]:
    base = (root or state_root()) / "vms"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "state.json").exists())
