"""A *simulated* Windows guest for the guard tests (no Windows runs here).

``SimWindows`` models what the guard scripts read and write (registry values, the IDD device,
the user session's topology, the scheduled task, the watchdog's state file) and answers each
script with the schema-1 JSON document the real script prints.  ``SimTransport`` is a
:class:`GuestTransport` that takes the host's real argv: encoded ``powershell.exe`` commands
(make-directory, file-hash) and ``powershell.exe -File <script>`` for the guard scripts, whose
copied bytes say which guard and mode to answer for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.guards.catalog import DEFAULT_PROFILE
from vmforge.guards.runner import POWERSHELL_FILE
from vmforge.guards.scripts import WINDOWS_LAYOUT, GuestLayout, policy_item, watchdog_arguments
from vmforge.guest.os_windows import POWERSHELL
from vmforge.guest.transport import Completed, GuestTransport, OsInfo
from vmforge.plan import GuardsPlan


@dataclass
class SimWindows:
    plan: GuardsPlan
    layout: GuestLayout = WINDOWS_LAYOUT
    registry: dict[str, Any] = field(default_factory=dict)  # item id -> value
    accounts: set[str] = field(default_factory=lambda: {"vmforge", "alice"})
    profiles: set[str] = field(default_factory=lambda: {"vmforge", "alice"})
    idd_present: bool = True
    idd_problem: int = 0  # 22: disabled
    idd_can_attach: bool = True
    idd_attached: bool = False
    session_user: str | None = "vmforge"
    panel_present: bool = True
    panel_specialized: bool = False
    specialize_rc: int = 0
    edition: str = "Enterprise"
    build: int = 22631
    task: dict[str, Any] | None = None
    watchdog_state: dict[str, Any] | None = None  # {"alive": bool, "valve_tripped": bool}
    files: dict[str, bytes] = field(default_factory=dict)
    specialize_calls: int = 0
    script_errors: list[str] = field(default_factory=list)
    override: dict[tuple[str, str], tuple[int, bytes, bytes]] = field(default_factory=dict)

    # -- one answer per guard ----------------------------------------------------------------

    def answer(self, guard: str, mode: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "vmforge_guard": 1,
            "guard": guard,
            "mode": mode,
            "found": {},
            "unknown": {},
            "changed": [],
            "facts": {},
            "errors": list(self.script_errors),
        }
        getattr(self, "_" + guard.replace("-", "_"))(mode, doc)
        return doc

    def _policies(self, mode: str, doc: dict[str, Any]) -> None:
        targets = [*self.plan.desktop_users, *([DEFAULT_PROFILE] if self.plan.default_profile else [])]
        doc["facts"]["no_profile"] = []
        for policy in self.plan.policies:
            for target in targets if policy.scope == "user" else [None]:
                item = policy_item(policy, target)
                if target not in (None, DEFAULT_PROFILE) and target not in self.accounts:
                    doc["errors"].append(f"no account '{target}' in the guest")
                    doc["found"][item] = None
                    continue
                if target not in (None, DEFAULT_PROFILE) and target not in self.profiles:
                    if target not in doc["facts"]["no_profile"]:
                        doc["facts"]["no_profile"].append(target)
                    doc["found"][item] = None
                    continue
                if mode == "enforce" and self.registry.get(item) != policy.value:
                    self.registry[item] = policy.value
                    doc["changed"].append(item)
                doc["found"][item] = self.registry.get(item)

    def _session(self, attach: bool, doc: dict[str, Any], item: str) -> bool:
        if self.session_user is None or self.session_user not in self.plan.desktop_users:
            doc["unknown"][item] = f"no desktop session of {', '.join(self.plan.desktop_users)} is open to ask"
            return False
        if attach and not self.idd_attached and self.idd_can_attach:
            self.idd_attached = True
            doc["changed"].append(item)
        return True

    def _idd_desktop(self, mode: str, doc: dict[str, Any]) -> None:
        found = doc["found"]
        if not self.idd_present:
            found.update({"device.present": None, "device.status": None, "desktop.attached": None})
            return
        if mode == "enforce" and self.idd_problem == 22:
            self.idd_problem = 0
            doc["changed"].append("device.status")
        found["device.present"] = True
        found["device.status"] = "OK" if self.idd_problem == 0 else "Error"
        doc["facts"]["instance_id"] = "ROOT\\DISPLAY\\0000"
        if self._session(mode == "enforce", doc, "desktop.attached"):
            found["desktop.attached"] = self.idd_attached

    def _specialized_panel(self, mode: str, doc: dict[str, Any]) -> None:
        found = doc["found"]
        found["edition"], found["build"] = self.edition, self.build
        supported = self.edition in ("Enterprise", "ProfessionalWorkstation", "IoTEnterprise") and self.build >= 19041
        if not supported:
            doc["errors"].append(f"edition {self.edition} build {self.build} has no specialized displays")
            for item in ("idd.attached", "panel.present", "panel.specialized"):
                doc["unknown"][item] = "not read: the edition has no specialized displays"
            return
        if not self.idd_present:
            found["idd.attached"] = None
            for item in ("panel.present", "panel.specialized"):
                doc["unknown"][item] = "not read: no IDD device, so the panel must stay on the desktop"
            return
        if not self._session(mode == "enforce", doc, "idd.attached"):
            for item in ("panel.present", "panel.specialized"):
                doc["unknown"][item] = doc["unknown"]["idd.attached"]
            return
        calls = []
        if mode == "enforce" and self.idd_attached and self.panel_present and not self.panel_specialized:
            self.specialize_calls += 1
            calls.append({"name": "DELL U2720Q", "target_id": 4357, "rc": self.specialize_rc})
            if self.specialize_rc == 0:
                self.panel_specialized = True
                doc["changed"].append("panel.specialized")
        doc["facts"]["specialize_calls"] = calls
        found["idd.attached"] = self.idd_attached
        found["panel.present"] = True if self.panel_present else None
        found["panel.specialized"] = self.panel_specialized if self.panel_present else None

    def _topology_watchdog(self, mode: str, doc: dict[str, Any]) -> None:
        wanted = {
            "arguments": watchdog_arguments(self.layout),
            "users": ",".join(sorted(set(self.plan.desktop_users))),
            "enabled": True,
        }
        if mode == "enforce":
            if self.task != wanted:
                self.task = dict(wanted)
                doc["changed"].append("task.registered")
            if self.watchdog_state and self.watchdog_state["valve_tripped"]:
                self.watchdog_state = None
                doc["changed"].append("valve.tripped")
        found = doc["found"]
        if self.task is None:
            found.update({"task.registered": None, "task.enabled": None, "task.arguments": None, "task.users": None})
        else:
            found["task.registered"] = True
            found["task.enabled"] = self.task["enabled"]
            found["task.arguments"] = self.task["arguments"]
            found["task.users"] = self.task["users"]
        script = self.files.get(self.layout.watchdog_script)
        found["script.sha256"] = hashlib.sha256(script).hexdigest() if script is not None else None
        if self.watchdog_state is None:
            why = "the watchdog has not run in a user session yet (no logon since it was installed)"
            doc["unknown"]["watchdog.alive"] = why
            doc["unknown"]["valve.tripped"] = why
            return
        if self.watchdog_state["alive"]:
            found["watchdog.alive"] = True
        else:
            doc["unknown"]["watchdog.alive"] = (
                "last heartbeat 900 s ago (no desktop session now, or the watchdog stopped)"
            )
        found["valve.tripped"] = self.watchdog_state["valve_tripped"]


class SimTransport(GuestTransport):
    name = "simulated Windows guest"

    def __init__(self, sim: SimWindows) -> None:
        self.sim = sim
        self.calls: list[list[str]] = []

    def wait_ready(self, deadline: float) -> None:
        return None

    def os_info(self) -> OsInfo:
        return OsInfo("windows", "mswindows", "Microsoft Windows 11 Enterprise", "10.0", "22631", "x86_64")

    def put_file(self, local: Path, remote: str) -> int:
        data = local.read_bytes()
        self.sim.files[remote] = data
        return len(data)

    def get_file(self, remote: str, local: Path) -> int:
        local.write_bytes(self.sim.files[remote])
        return len(self.sim.files[remote])

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float) -> Completed:
        self.calls.append(list(argv))
        if list(argv[:4]) == POWERSHELL:
            script = base64.b64decode(argv[4]).decode("utf-16-le")
            path = ps_unquote(re.search(r"^\$Path = ('(?:[^']|'')*')$", script, re.M).group(1))  # type: ignore[union-attr]
            if "Get-FileHash" in script:
                return Completed(0, hashlib.sha256(self.sim.files[path]).hexdigest().encode(), b"")
            if "CreateDirectory" in script:
                return Completed(0, b"", b"")
        if list(argv[:6]) == POWERSHELL_FILE:
            text = self.sim.files[argv[6]].decode("utf-8-sig")
            guard = re.search(r"^\$Guard = '([^']+)'$", text, re.M).group(1)  # type: ignore[union-attr]
            mode = re.search(r"^\$Mode = '([^']+)'$", text, re.M).group(1)  # type: ignore[union-attr]
            if (guard, mode) in self.sim.override:
                return Completed(*self.sim.override[(guard, mode)])
            return Completed(0, json.dumps(self.sim.answer(guard, mode)).encode(), b"")
        raise AssertionError(f"the simulated guest does not know {argv[:6]}")

    def guard_runs(self) -> list[str]:
        return [call[6] for call in self.calls if call[:6] == POWERSHELL_FILE]


def ps_unquote(literal: str) -> str:
    return literal[1:-1].replace("''", "'")
