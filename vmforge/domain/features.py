"""Machine features and the clock: ACPI, Hyper-V enlightenments, KVM hiding, SMM, timers."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, on_off, sub

# Hyper-V enlightenments Windows uses (each is 'on'); spinlocks and vendor_id take values.
HYPERV_FLAGS = ("relaxed", "vapic", "vpindex", "synic", "stimer", "reset", "frequencies")
SPINLOCK_RETRIES = 8191
# Any 1-12 character string; consumer NVIDIA drivers only check that it is not KVM's.
DEFAULT_VENDOR_ID = "vmforge"


@dataclass(frozen=True)
class Features:
    hyperv: bool  # Windows guests on KVM (QEMU refuses Hyper-V enlightenments under TCG)
    hide_hypervisor: bool  # kvm hidden, plus a Hyper-V vendor_id when enlightened (consumer NVIDIA drivers)
    smm: bool  # required by secure-boot OVMF
    vendor_id: str = DEFAULT_VENDOR_ID

    def element(self, parent: Element) -> Element:
        features = sub(parent, "features")
        sub(features, "acpi")
        sub(features, "apic")
        if self.hyperv:
            hyperv = sub(features, "hyperv", mode="custom")
            for flag in HYPERV_FLAGS:
                sub(hyperv, flag, state="on")
                if flag == "vapic":
                    sub(hyperv, "spinlocks", state="on", retries=SPINLOCK_RETRIES)
            if self.hide_hypervisor:
                sub(hyperv, "vendor_id", state="on", value=self.vendor_id)
        if self.hide_hypervisor:
            kvm = sub(features, "kvm")
            sub(kvm, "hidden", state=on_off(True))
        sub(features, "vmport", state="off")
        if self.smm:
            sub(features, "smm", state="on")
        return features


@dataclass(frozen=True)
class Clock:
    """Windows keeps the RTC in local time and wants the Hyper-V clock (KVM only); HPET off."""

    windows: bool
    hyperv: bool

    def element(self, parent: Element) -> Element:
        clock = sub(parent, "clock", offset="localtime" if self.windows else "utc")
        sub(clock, "timer", name="rtc", tickpolicy="catchup")
        sub(clock, "timer", name="pit", tickpolicy="delay")
        sub(clock, "timer", name="hpet", present="no")
        if self.hyperv:
            sub(clock, "timer", name="hypervclock", present="yes")
        return clock


@dataclass(frozen=True)
class PowerManagement:
    suspend_to_disk: bool

    def element(self, parent: Element) -> Element:
        pm = sub(parent, "pm")
        sub(pm, "suspend-to-mem", enabled="no")
        sub(pm, "suspend-to-disk", enabled="yes" if self.suspend_to_disk else "no")
        return pm
