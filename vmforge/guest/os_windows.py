"""The Windows guest adapter: every action is a real .ps1 file under templates/guest/windows/.

Scripts run as ``powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64 UTF-16LE>``:
no quoting of the script through a command line, no execution-policy prompt for files.  Values
go into the scripts as PowerShell single-quoted literals (:func:`ps_literal`), the one quoting
form with no expansion at all.
"""

from __future__ import annotations

import base64
import ntpath

from vmforge.guest.os_adapter import OsAdapter
from vmforge.templating import render_template

POWERSHELL = ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
REBOOT_DELAY_SECONDS = 5


def ps_literal(value: str) -> str:
    """``value`` as a PowerShell single-quoted string (a quote is doubled, nothing expands)."""
    # PowerShell also treats the typographic quotes U+2018/U+2019/U+201A/U+201B as single quotes.
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


def encode_command(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def render_script(name: str, **values: str | int) -> str:
    """templates/guest/windows/<name>.ps1 with string values quoted as literals."""
    context = {k: ps_literal(v) if isinstance(v, str) else v for k, v in values.items()}
    return render_template(f"guest/windows/{name}.ps1", **context)


class WindowsAdapter(OsAdapter):
    family = "windows"

    def script_argv(self, script: str) -> list[str]:
        return [*POWERSHELL, encode_command(script)]

    def hash_argv(self, remote: str) -> list[str]:
        return self.script_argv(render_script("file-hash", path=remote))

    def boot_id_argv(self) -> list[str]:
        return self.script_argv(render_script("boot-identity"))

    def reboot_argv(self) -> list[str]:
        return self.script_argv(render_script("reboot", delay_seconds=REBOOT_DELAY_SECONDS))

    def shutdown_argv(self) -> list[str]:
        return self.script_argv(render_script("shutdown", delay_seconds=REBOOT_DELAY_SECONDS))

    def mkdir_argv(self, remote_dir: str) -> list[str]:
        return self.script_argv(render_script("make-directory", path=remote_dir))

    def temp_dir(self) -> str:
        return "C:\\Windows\\Temp\\vmforge"

    def join(self, directory: str, name: str) -> str:
        return ntpath.join(directory, name)
