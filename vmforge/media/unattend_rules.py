"""What vmforge knows about answer-file structure: its own rules, written for vmforge.

The envelope rules mirror what Windows Setup (and Microsoft's unattend schema) require of
``<unattend>``, ``<settings pass>`` and ``<component>``.  The component -> pass table covers
the components vmforge and common tools use; a richer reference (Component.json and
settings.json from the unattend-generator project and Microsoft's reference docs) can be given
to ``vmforge answer validate --reference DIR`` for warnings about everything else.
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

_ALL_BUT_PE = ("generalize", "specialize", "auditSystem", "auditUser", "oobeSystem")
# Component -> passes it is processed in (vmforge's own table; names matched case-insensitively).
COMPONENT_PASSES: dict[str, tuple[str, ...]] = {
    name.casefold(): passes
    for name, passes in {
        "Microsoft-Windows-Setup": ("windowsPE",),
        "Microsoft-Windows-International-Core-WinPE": ("windowsPE",),
        "Microsoft-Windows-PnpCustomizationsWinPE": ("windowsPE",),
        "Microsoft-Windows-PnpCustomizationsNonWinPE": ("offlineServicing", "auditSystem"),
        "Microsoft-Windows-International-Core": ("specialize", "oobeSystem"),
        "Microsoft-Windows-Shell-Setup": (
            "offlineServicing", "windowsPE", "generalize", "specialize", "auditSystem", "auditUser", "oobeSystem",
        ),
        "Microsoft-Windows-Deployment": _ALL_BUT_PE,
        "Microsoft-Windows-LUA-Settings": ("offlineServicing",),
        "Microsoft-Windows-PnPSysprep": ("generalize", "specialize"),
        "Microsoft-Windows-Security-SPP": ("generalize",),
        "Microsoft-Windows-Security-SPP-UX": ("specialize",),
        "Microsoft-Windows-TerminalServices-LocalSessionManager": ("offlineServicing", "generalize", "specialize"),
        "Microsoft-Windows-TerminalServices-RDP-WinStationExtensions": ("generalize", "specialize"),
        "Networking-MPSSVC-Svc": ("specialize",),
        "Microsoft-Windows-UnattendedJoin": ("specialize",),
        "Microsoft-Windows-ErrorReportingCore": ("specialize",),
        "Microsoft-Windows-SQMApi": ("specialize",),
        "Microsoft-Windows-SystemRestore-Main": ("specialize",),
        "Microsoft-Windows-IE-InternetExplorer": ("specialize",),
        "Microsoft-Windows-IE-ESC": ("specialize",),
        "Microsoft-Windows-OutOfBoxExperience": ("generalize", "specialize"),
        "Microsoft-Windows-ServerManager-SvrMgrNc": ("generalize", "specialize"),
        "Microsoft-Windows-SecureStartup-FilterDriver": ("offlineServicing", "specialize", "auditSystem", "oobeSystem"),
        "Microsoft-Windows-EnhancedStorage-Adm": ("specialize", "oobeSystem"),
        "Microsoft-Windows-TCPIP": ("windowsPE", "specialize"),
        "Microsoft-Windows-DNS-Client": ("windowsPE", "specialize"),
        "Microsoft-Windows-Web-Services-for-Management-Core": ("specialize",),
        "Microsoft-Windows-powercpl": ("specialize",),
        "Microsoft-Windows-CodeIntegrity": ("offlineServicing",),
    }.items()
}  # fmt: skip

# Elements that are list items: each needs wcm:action ("add", "modify", "remove").
LIST_ITEMS = frozenset(
    {
        "Disk", "CreatePartition", "ModifyPartition", "MetaData", "RunSynchronousCommand", "RunAsynchronousCommand",
        "SynchronousCommand", "AsynchronousCommand", "LocalAccount", "DomainAccount", "DomainAccountList",
        "PathAndCredentials", "Interface", "IpAddress", "Route",
    }
)  # fmt: skip
WCM_ACTIONS = frozenset({"add", "modify", "remove"})
