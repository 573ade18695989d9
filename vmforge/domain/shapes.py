"""The three shapes of one VM and which installation media each carries."""

from __future__ import annotations

from enum import StrEnum


class Shape(StrEnum):
    INSTALL = "install"
    POST_INSTALL = "post-install"
    FINAL = "final"


MEDIA_ROLES = ("installer", "answer", "virtio-win")


def media_roles(shape: Shape) -> tuple[str, ...]:
    """install: all three; post-install: answer + virtio-win (the bootstrap script installs the
    guest agent from virtio-win at first logon); final: none."""
    if shape is Shape.INSTALL:
        return MEDIA_ROLES
    if shape is Shape.POST_INSTALL:
        return ("answer", "virtio-win")
    return ()
