"""The ``<os>`` element: q35 machine, BIOS or UEFI (OVMF pflash) with a per-VM NVRAM copy.

Firmware paths come from the daemon's domain capabilities (:mod:`vmforge.host.domcaps`), never
from constants here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub, yes_no


@dataclass(frozen=True)
class Uefi:
    loader: str
    secure: bool
    nvram_template: str | None  # None: libvirt fills it from the firmware descriptors at start
    # The per-VM NVRAM file itself is libvirt's default (<nvram dir>/<name>_VARS.fd), made from
    # the template at define time and removed by undefine with VIR_DOMAIN_UNDEFINE_NVRAM.


@dataclass(frozen=True)
class DirectKernel:
    """Direct kernel boot (``<kernel>``, ``<initrd>``, ``<cmdline>``): QEMU loads the kernel
    itself, so no disk or CD is booted (the probe guest boots this way)."""

    kernel: str
    initrd: str
    cmdline: str


@dataclass(frozen=True)
class OsBoot:
    machine: str
    uefi: Uefi | None  # None: SeaBIOS
    direct: DirectKernel | None = None

    def element(self, parent: Element) -> Element:
        os_el = sub(parent, "os")
        sub(os_el, "type", "hvm", arch="x86_64", machine=self.machine)
        if self.uefi is not None:
            sub(os_el, "loader", self.uefi.loader, readonly="yes", secure=yes_no(self.uefi.secure), type="pflash")
            if self.uefi.nvram_template is not None:
                sub(os_el, "nvram", template=self.uefi.nvram_template)
        if self.direct is not None:
            sub(os_el, "kernel", self.direct.kernel)
            sub(os_el, "initrd", self.direct.initrd)
            sub(os_el, "cmdline", self.direct.cmdline)
        # Boot order is given per device (<boot order='N'/>), never here.
        return os_el
