"""virtio-gpu video (resolution, heads) and the VNC console."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub


@dataclass(frozen=True)
class Video:
    width: int
    height: int
    heads: int
    model: str = "virtio"

    def element(self, parent: Element) -> Element:
        video = sub(parent, "video")
        model = sub(video, "model", type=self.model, heads=self.heads, primary="yes")
        sub(model, "resolution", x=self.width, y=self.height)
        return video


@dataclass(frozen=True)
class VncGraphics:
    listen: str

    def element(self, parent: Element) -> Element:
        graphics = sub(parent, "graphics", type="vnc", port="-1", autoport="yes", listen=self.listen)
        sub(graphics, "listen", type="address", address=self.listen)
        return graphics
