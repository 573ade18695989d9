"""The VM's credentials: one place that names them in secrets.json and decides their values.

The administrator password is the spec's ``windows.password`` or, for ``generate``, a random
one.  Either way it is stored in the VM's 0600 secrets file on first use and read from there
afterwards, so a rotation (``vmforge remote rotate-password``) is what every later command sees.
"""

from __future__ import annotations

from vmforge.logs import register_secret
from vmforge.spec import Spec
from vmforge.state import VmDir, generate_password

# Names of entries in secrets.json (not secrets themselves).
ADMIN_PASSWORD = "admin_password"  # noqa: S105
ADMIN_PASSWORD_NEXT = "admin_password_next"  # noqa: S105 - set while a rotation is under way


def admin_password(spec: Spec, vm_dir: VmDir) -> str:
    given = spec.windows.password.get_secret_value()
    if given != "generate":
        register_secret(given)
    return vm_dir.secret(ADMIN_PASSWORD, lambda: generate_password() if given == "generate" else given)
