"""The host's /sys, /proc, /dev and /etc, read below an injectable root (``/`` or a fake tree).

Every doctor check reads the host through :class:`HostFs`, never through absolute paths, so
tests run each check against trees laid out like the real ones.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

# libvirt's QEMU user on Debian (built --with-qemu-user=libvirt-qemu); qemu.conf may override it.
DEFAULT_QEMU_USER = "libvirt-qemu"
DEFAULT_QEMU_GROUP = "libvirt-qemu"


@dataclass(frozen=True)
class Identity:
    """A user as the kernel sees it for permission checks."""

    name: str
    uid: int
    gids: frozenset[int]

    def can(self, path: Path, want: int) -> bool:
        """Whether this identity has ``want`` (a mix of os.R_OK, os.W_OK, os.X_OK) on ``path``,
        from the mode bits alone (root passes everything but execute-without-any-x)."""
        info = path.stat()
        if self.uid == 0:
            return not (want & os.X_OK) or bool(info.st_mode & 0o111) or stat.S_ISDIR(info.st_mode)
        if info.st_uid == self.uid:
            bits = (info.st_mode >> 6) & 7
        elif info.st_gid in self.gids:
            bits = (info.st_mode >> 3) & 7
        else:
            bits = info.st_mode & 7
        return bits & want == want

    def can_reach(self, path: Path, stop: Path) -> Path | None:
        """The first folder between ``stop`` and ``path`` this identity cannot enter, or None."""
        current = stop
        for part in path.relative_to(stop).parts[:-1] if path != stop else ():
            current = current / part
            if current.is_dir() and not self.can(current, os.X_OK):
                return current
        return None


class HostFs:
    """Paths and small parsers for one host tree; ``root`` is ``/`` on a real host."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root

    def path(self, absolute: str | Path) -> Path:
        """``/dev/kvm`` -> ``<root>/dev/kvm``."""
        return self.root / str(absolute).lstrip("/")

    def read(self, absolute: str | Path) -> str | None:
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    # -- /proc --------------------------------------------------------------------------------
    def cmdline(self) -> list[str]:
        return (self.read("/proc/cmdline") or "").split()

    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo in bytes (``kB`` values scaled), counts (HugePages_*) as they are."""
        out: dict[str, int] = {}
        for line in (self.read("/proc/meminfo") or "").splitlines():
            match = re.match(r"^(\S+):\s+(\d+)(\s+kB)?", line)
            if match:
                value = int(match.group(2))
                out[match.group(1)] = value * 1024 if match.group(3) else value
        return out

    def memlock_limit(self) -> int | None:
        """The soft 'Max locked memory' of this process in bytes; None for unlimited or unknown."""
        for line in (self.read("/proc/self/limits") or "").splitlines():
            if line.startswith("Max locked memory"):
                soft = line[len("Max locked memory") :].split()[0]
                return None if soft == "unlimited" else int(soft)
        return None

    def cpu_vendor(self) -> str | None:
        match = re.search(r"^vendor_id\s*:\s*(\S+)", self.read("/proc/cpuinfo") or "", re.M)
        return match.group(1) if match else None

    def is_virtual_machine(self) -> bool:
        """The CPU's 'hypervisor' flag: this host runs under another hypervisor."""
        match = re.search(r"^flags\s*:(.*)$", self.read("/proc/cpuinfo") or "", re.M)
        return bool(match and "hypervisor" in match.group(1).split())

    def process_names(self) -> set[str]:
        names: set[str] = set()
        proc = self.path("/proc")
        if not proc.is_dir():
            return names
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:
                    names.add((entry / "comm").read_text(encoding="utf-8", errors="replace").strip())
                except OSError:
                    continue
        return names

    def framebuffers(self) -> list[str]:
        """/proc/fb lines' names, e.g. ['EFI VGA'] or ['amdgpudrmfb']."""
        lines = (self.read("/proc/fb") or "").splitlines()
        return [line.split(" ", 1)[1].strip() for line in lines if " " in line]

    # -- /sys ---------------------------------------------------------------------------------
    def module_loaded(self, name: str) -> bool:
        return self.path(f"/sys/module/{name}").is_dir()

    # -- /etc ---------------------------------------------------------------------------------
    def _table(self, absolute: str) -> list[list[str]]:
        rows = []
        for line in (self.read(absolute) or "").splitlines():
            if line and not line.startswith("#"):
                rows.append(line.split(":"))
        return rows

    def group_gid(self, name: str) -> int | None:
        for row in self._table("/etc/group"):
            if len(row) >= 3 and row[0] == name:
                return int(row[2])
        return None

    def group_name(self, gid: int) -> str:
        for row in self._table("/etc/group"):
            if len(row) >= 3 and row[2] == str(gid):
                return row[0]
        return str(gid)

    def user_name(self, uid: int) -> str:
        for row in self._table("/etc/passwd"):
            if len(row) >= 3 and row[2] == str(uid):
                return row[0]
        return str(uid)

    def identity(self, user: str) -> Identity | None:
        """uid and every gid of ``user`` from /etc/passwd and /etc/group; None when unknown."""
        for row in self._table("/etc/passwd"):
            if len(row) >= 4 and row[0] == user:
                gids = {int(row[3])}
                for group in self._table("/etc/group"):
                    if len(group) >= 4 and user in group[3].split(","):
                        gids.add(int(group[2]))
                return Identity(user, int(row[2]), frozenset(gids))
        return None

    def qemu_conf(self) -> str:
        return self.read("/etc/libvirt/qemu.conf") or ""

    def qemu_conf_value(self, key: str) -> str | None:
        """An uncommented ``key = "value"`` (or a [list]) from qemu.conf, as written."""
        match = re.search(rf"^\s*{key}\s*=\s*(\[[^\]]*\]|\"[^\"]*\"|\S+)", self.qemu_conf(), re.M)
        if not match:
            return None
        return match.group(1).strip('"')

    def qemu_user(self) -> str:
        return self.qemu_conf_value("user") or DEFAULT_QEMU_USER

    def owner(self, path: Path) -> str:
        info = path.stat()
        return f"{self.user_name(info.st_uid)}:{self.group_name(info.st_gid)} {stat.S_IMODE(info.st_mode):04o}"
