"""Channel errors: each names what was seen and what to do."""

from __future__ import annotations

from vmforge.errors import VmforgeError


class ChannelError(VmforgeError):
    """The shared-memory channel cannot be used as asked."""


class VersionMismatch(ChannelError):
    """The two sides speak different major layout versions; the attach is refused."""


class StaleSession(ChannelError):
    """The session this side attached to was replaced (the host re-created the layout)."""


class PeerLost(ChannelError):
    """The peer's heartbeat stopped changing for longer than the peer timeout."""


class ChannelTimeout(ChannelError):
    """Waiting for the peer (attach, a reply, a frame) took longer than the deadline."""
