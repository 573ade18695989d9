"""Which Windows family an install image belongs to, from its version and installation type."""

from __future__ import annotations

from vmforge.media.wim import WimImage
from vmforge.spec import WindowsFamily

# First build of each NT 10.0 release that vmforge tells apart.
WINDOWS_11_FIRST_BUILD = 22000
SERVER_BUILDS = (  # (first build, family), newest first
    (26100, WindowsFamily.S2025),
    (20348, WindowsFamily.S2022),
    (17763, WindowsFamily.S2019),
    (14393, WindowsFamily.S2016),
)


def is_server(image: WimImage) -> bool:
    return image.installation_type.lower().startswith("server") or image.edition_id.lower().startswith("server")


def image_family(image: WimImage) -> WindowsFamily | None:
    """The family of one image, or None when vmforge does not support it (e.g. Server 2012)."""
    major, minor, build = image.major, image.minor or 0, image.build or 0
    if major is None:
        return None
    server = is_server(image)
    if (major, minor) == (6, 1):
        return None if server else WindowsFamily.W7
    if (major, minor) == (6, 3):
        return None if server else WindowsFamily.W81
    if major != 10:
        return None
    if not server:
        return WindowsFamily.W11 if build >= WINDOWS_11_FIRST_BUILD else WindowsFamily.W10
    for first, family in SERVER_BUILDS:
        if build >= first:
            return family
    return None
