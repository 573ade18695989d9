"""What a failed or timed-out create leaves for diagnosis in ``$STATE/vms/NAME/diagnostics/``:
a console screenshot (PNG), the serial log, and Windows Setup's logs when a guest channel is up.

Collection never raises: each item that cannot be had is listed with the reason instead."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vmforge.create.screenshot import screenshot_png
from vmforge.errors import VmforgeError
from vmforge.guest.transport import GuestTransport
from vmforge.logs import get_logger

log = get_logger("create.diagnostics")

SETUP_LOGS = (r"C:\Windows\Panther\setupact.log", r"C:\Windows\Panther\setuperr.log")


@dataclass
class Diagnostics:
    folder: Path
    saved: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "saved": self.saved, "missing": self.missing}


def collect(
    folder_root: Path,
    *,
    conn: Any | None,
    dom: Any | None,
    serial_log: Path | None,
    console_bytes: bytes | None = None,
    transport: GuestTransport | None = None,
    windows: bool = False,
    stamp: datetime | None = None,
) -> Diagnostics:
    folder = folder_root / "diagnostics" / (stamp or datetime.now()).strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    diag = Diagnostics(folder)
    if dom is not None and conn is not None:
        try:
            active = bool(dom.isActive())
        except Exception:
            active = False
        if active:
            try:
                screenshot_png(conn, dom, folder / "screenshot.png")
                diag.saved.append("screenshot.png")
            except VmforgeError as exc:
                diag.missing.append(f"screenshot.png ({exc.message})")
        else:
            diag.missing.append("screenshot.png (the domain is not running)")
    if serial_log is not None and serial_log.is_file():
        shutil.copyfile(serial_log, folder / "serial0.log")
        diag.saved.append("serial0.log")
    elif console_bytes:
        (folder / "serial0.log").write_bytes(console_bytes)
        diag.saved.append("serial0.log")
    else:
        diag.missing.append("serial0.log (no serial output recorded)")
    if windows:
        for remote in SETUP_LOGS:
            name = remote.rsplit("\\", 1)[-1]
            if transport is None:
                diag.missing.append(f"{name} (no guest channel is up)")
                continue
            try:
                transport.get_file(remote, folder / name)
                diag.saved.append(name)
            except VmforgeError as exc:
                diag.missing.append(f"{name} ({exc.message})")
    log.info("diagnostics in %s: saved %s", folder, ", ".join(diag.saved) or "nothing")
    return diag
