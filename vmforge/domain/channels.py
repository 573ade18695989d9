"""Guest channels: the QEMU guest agent (virtio-serial) and the serial console (pty + log)."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub

AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass(frozen=True)
class AgentChannel:
    def element(self, parent: Element) -> Element:
        channel = sub(parent, "channel", type="unix")
        sub(channel, "target", type="virtio", name=AGENT_CHANNEL)
        return channel


@dataclass(frozen=True)
class SerialConsole:
    """COM1 on a pty, also logged to ``log_file`` (virtlogd); read remotely via the console stream."""

    log_file: str | None

    def element(self, parent: Element) -> Element:
        serial = sub(parent, "serial", type="pty")
        if self.log_file:
            sub(serial, "log", file=self.log_file, append="on")
        target = sub(serial, "target", type="isa-serial", port=0)
        sub(target, "model", name="isa-serial")
        return serial

    def console_element(self, parent: Element) -> Element:
        console = sub(parent, "console", type="pty")
        sub(console, "target", type="serial", port=0)
        return console
