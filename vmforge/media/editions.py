"""Generic setup keys per edition: they select an edition during Setup and never activate.

These are Microsoft's published generic installation keys (client) and KMS client setup keys
(GVLKs, server and volume editions).  vmforge uses one when the spec gives no product key, and
the validator uses the table to spot a key that belongs to another edition.
"""

from __future__ import annotations

import re

from vmforge.spec import WindowsFamily

KEY_RE = re.compile(r"^[0-9A-Z]{5}(?:-[0-9A-Z]{5}){4}$")

# Windows 10 and 11 share their generic keys (edition id -> key).
_CLIENT_10 = {
    "Core": "YTMG3-N6DKC-DKB77-7M9GH-8HVX7",
    "CoreN": "4CPRK-NM3K3-X6XXQ-RXX86-WXCHW",
    "CoreSingleLanguage": "BT79Q-G7N6G-PGBYW-4YWX6-6F4BT",
    "Professional": "VK7JG-NPHTM-C97JM-9MPGT-3V66T",
    "ProfessionalN": "2B87N-8KFHP-DKV6R-Y2C8J-PKCKT",
    "ProfessionalWorkstation": "DXG7C-N36C4-C4HTG-X4T3X-2YV77",
    "ProfessionalEducation": "8PTT6-RNW4C-6V7J2-C2D3X-MHBPB",
    "Education": "YNMGQ-8RYV3-4PGQ3-C8XTP-7CFBY",
    "Enterprise": "XGVPP-NMH47-7TTHJ-W3FW7-8HV2C",
}
_CLIENT_81 = {
    "Core": "334NH-RXG76-64THK-C7CKG-D3VPT",
    "Professional": "XHQ8N-C3MCJ-RQXB6-WCHYG-C9WKB",
    "Enterprise": "MHF9N-XY6XB-WVXMC-BTDCT-MKKG7",
}
_CLIENT_7 = {
    "Professional": "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4",
    "Enterprise": "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH",
}
GENERIC_KEYS: dict[WindowsFamily, dict[str, str]] = {
    WindowsFamily.W7: _CLIENT_7,
    WindowsFamily.W81: _CLIENT_81,
    WindowsFamily.W10: _CLIENT_10,
    WindowsFamily.W11: _CLIENT_10,
    WindowsFamily.S2016: {
        "ServerStandard": "WC2BQ-8NRM3-FDDYY-2BFGV-KHKQY",
        "ServerDatacenter": "CB7KF-BWN84-R7R2Y-793K2-8XDDG",
    },
    WindowsFamily.S2019: {
        "ServerStandard": "N69G4-B89J2-4G8F4-WWYCC-J464C",
        "ServerDatacenter": "WMDGN-G9PQG-XVVXX-R3X43-63DFG",
    },
    WindowsFamily.S2022: {
        "ServerStandard": "VDYBN-27WPP-V4HQT-9VMD4-VMK7H",
        "ServerDatacenter": "WX4NM-KYWYW-QJJR4-XV3QB-6VM33",
    },
    WindowsFamily.S2025: {
        "ServerStandard": "TVRH6-WHNXV-R9WG3-9XRFY-MY832",
        "ServerDatacenter": "D764K-2NDRG-47T6Q-P8T8W-YP6DF",
    },
}


def normalise_edition(edition_id: str) -> str:
    """Server Core images carry the same edition as Desktop Experience ones ('...Cor' in some)."""
    for suffix in ("Core", "Cor"):
        if edition_id.startswith("Server") and edition_id.endswith(suffix) and edition_id != "Server" + suffix:
            return edition_id[: -len(suffix)]
    return edition_id


def generic_key(family: WindowsFamily, edition_id: str) -> str | None:
    """The generic key for an edition, or None (evaluation media and unknown editions need none)."""
    return GENERIC_KEYS.get(family, {}).get(normalise_edition(edition_id))


def key_owner(key: str) -> list[tuple[WindowsFamily, str]]:
    """Every (family, edition id) whose generic key ``key`` is; empty when vmforge does not know it."""
    key = key.upper()
    return [(family, edition) for family, table in GENERIC_KEYS.items() for edition, k in table.items() if k == key]
