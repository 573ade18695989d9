"""Start helper processes (echo peer, server) running this very vmforge, not another install."""

from __future__ import annotations

import os
from pathlib import Path

import vmforge

PACKAGE_ROOT = Path(vmforge.__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env
