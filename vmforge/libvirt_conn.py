"""Opening libvirt connections and turning libvirt failures into readable errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import libvirt

from vmforge.errors import LibvirtError, UsageError

# libvirt prints every error to stderr by default; vmforge reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_DAEMON_HINT = (
    "is libvirtd running? On hosts without systemd start it with 'virtlogd -d && libvirtd -d' "
    "(scripts/setup-host does this)"
)
DAEMON_HINT = _DAEMON_HINT


def connect(uri: str, origin: str = "vm.connect") -> Any:
    """Open ``uri``; a URI libvirt rejects is a usage error, an unreachable daemon a runtime one."""
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        text = (exc.get_error_message() or str(exc)).strip()
        if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_ARG) and (
            "no connection driver" in text or "invalid" in text.lower()
        ):
            raise UsageError(
                f"{origin} = {uri!r}: libvirt does not accept this URI ({text})",
                hint="use qemu:///system (as root) or qemu:///session",
            ) from None
        raise LibvirtError(f"cannot connect to libvirt at {uri}: {text}", hint=_DAEMON_HINT) from None


@contextlib.contextmanager
def libvirt_errors(action: str, hint: str | None = None) -> Iterator[None]:
    """``with libvirt_errors("defining domain win"):`` maps libvirtError to LibvirtError."""
    try:
        yield
    except libvirt.libvirtError as exc:
        text = (exc.get_error_message() or str(exc)).strip()
        raise LibvirtError(f"{action} failed: {text}", hint=hint) from None
