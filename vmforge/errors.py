"""The exception family.  Library code raises these; only the CLI turns them into exit codes.

Exit codes (the CLI contract): 0 ok, 1 runtime failure, 2 usage or spec error, 3 a check found
problems.  Each error is one line of message plus an optional hint that says what to do.
"""

from __future__ import annotations

from typing import Any


class VmforgeError(Exception):
    """A failure the user can understand and act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "hint": self.hint, "exit_code": self.exit_code}


class UsageError(VmforgeError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class SpecError(UsageError):
    """The spec (file or overrides) is invalid.  Carries every problem found, first one in the message."""

    def __init__(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["problems"] = self.problems
        return data


class ChecksFailed(VmforgeError):
    """A check command (doctor, guard check, reprovision --check) found problems."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None, report: Any = None) -> None:
        super().__init__(message, hint)
        self.report = report

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.report is not None:
            data["report"] = self.report  # the whole check report, JSON-ready
        return data


class BusyError(VmforgeError):
    """Another vmforge command holds the VM's lock."""


class OwnershipError(VmforgeError):
    """A libvirt object exists under vmforge's name but vmforge did not create it."""


class LibvirtError(VmforgeError):
    """libvirt refused or failed an operation."""


class CommandFailed(VmforgeError):
    """A host program vmforge ran exited non-zero."""

    def __init__(self, message: str, hint: str | None = None, returncode: int = 1, output: str = "") -> None:
        super().__init__(message, hint)
        self.returncode = returncode
        self.output = output
