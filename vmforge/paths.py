"""Where vmforge keeps things on the host (XDG layout, overridable by environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def state_root(env: Mapping[str, str] | None = None) -> Path:
    """``$VMFORGE_STATE_DIR``, else ``$XDG_STATE_HOME/vmforge``, else ``~/.local/state/vmforge``."""
    env = os.environ if env is None else env
    if env.get("VMFORGE_STATE_DIR"):
        return Path(env["VMFORGE_STATE_DIR"])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "vmforge"
    return _home(env) / ".local" / "state" / "vmforge"


def data_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/vmforge``, else ``~/.local/share/vmforge``."""
    env = os.environ if env is None else env
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "vmforge"
    return _home(env) / ".local" / "share" / "vmforge"


def cache_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/vmforge``, else ``~/.cache/vmforge``."""
    env = os.environ if env is None else env
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "vmforge"
    return _home(env) / ".cache" / "vmforge"


def vm_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    return state_root(env) / "vms" / name
