"""What vmforge knows about answer-file structure: its own rules, written for vmforge.

The envelope rules mirror what Windows Setup (and Microsoft's unattend schema) require of
``<unattend>``, ``<settings pass>`` and ``<component>``; a test checks them against the XSD's
patterns recorded in vmforge's reference data.  Which component and setting belongs to which
pass is reference data, not code: :mod:`vmforge.media.refdata` (``unattend_reference.json``).
"""

from __future__ import annotations

import re

UNATTEND_NS = "urn:schemas-microsoft-com:unattend"
WCM_NS = "http://schemas.microsoft.com/WMIConfig/2002/State"
MICROSOFT_TOKEN = "31bf3856ad364e35"  # noqa: S105 - a public assembly key token

# Passes Setup runs, in order.  oobeUser is accepted by the schema but never run by Setup.
PASSES = ("windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem", "auditUser", "oobeSystem")
SCHEMA_ONLY_PASSES = ("oobeUser",)
WINDOWS_PE, SPECIALIZE = PASSES[0], PASSES[3]

# Envelope value patterns (case-insensitive, like the schema's).
ARCH_RE = re.compile(r"^(x86|ia64|amd64|wow64|msil|shx|arm|data|neutral|arm64)$", re.IGNORECASE)
TOKEN_RE = re.compile(r"^[0-9a-fA-F]{16}$")
VERSION_SCOPE_RE = re.compile(r"^(neutral|nonsxs)$", re.IGNORECASE)
_PART = r"0*(?:[0-9]{0,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
FOUR_PART_VERSION_RE = re.compile(rf"^{_PART}\.{_PART}\.{_PART}\.{_PART}$")

# Architectures a component may name on media of each architecture.
ARCH_COMPATIBLE = {
    "amd64": frozenset({"amd64", "wow64", "neutral", "msil", "data"}),
    "x86": frozenset({"x86", "neutral", "msil", "data"}),
    "arm64": frozenset({"arm64", "wow64", "neutral", "msil", "data"}),
}

# Components Setup reads only in windowsPE: anywhere else they are silently ignored.
WINPE_ONLY = frozenset(
    name.casefold()
    for name in (
        "Microsoft-Windows-Setup",
        "Microsoft-Windows-International-Core-WinPE",
        "Microsoft-Windows-PnpCustomizationsWinPE",
    )
)

# Elements that are list items: each needs wcm:action ("add", "modify", "remove").
LIST_ITEMS = frozenset(
    {
        "Disk", "CreatePartition", "ModifyPartition", "MetaData", "RunSynchronousCommand", "RunAsynchronousCommand",
        "SynchronousCommand", "AsynchronousCommand", "LocalAccount", "DomainAccount", "DomainAccountList",
        "PathAndCredentials", "Interface", "IpAddress", "Route",
    }
)  # fmt: skip
WCM_ACTIONS = frozenset({"add", "modify", "remove"})
