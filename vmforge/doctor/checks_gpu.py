"""GPU passthrough: IOMMU, the card's group, its driver, single-GPU hosts, ROM, reset, VFIO, memory.

PCI facts come from :mod:`vmforge.host.pci` (the same discovery the domain builder uses).
"""

from __future__ import annotations

from pathlib import Path

from vmforge.doctor.hostfs import HostFs
from vmforge.doctor.model import CheckResult, failed, passed, skipped, warned
from vmforge.errors import VmforgeError
from vmforge.host.pci import PciDevice, PciHost, passthrough_devices
from vmforge.units import format_size

AMD = 0x1002
# AMD GPUs whose reset leaves the card unusable until the host reboots (the "AMD reset bug");
# the out-of-tree vendor-reset module adds a working 'device_specific' reset for them.
AMD_RESET_BUG = {
    "Vega10": {
        0x6860,
        0x6861,
        0x6862,
        0x6863,
        0x6864,
        0x6867,
        0x6868,
        0x6869,
        0x686A,
        0x686B,
        0x686C,
        0x686D,
        0x686E,
        0x687F,
    },
    "Vega20": {0x66A0, 0x66A1, 0x66A2, 0x66A3, 0x66A4, 0x66A7, 0x66AF},
    "Navi10": {0x7310, 0x7312, 0x7318, 0x7319, 0x731A, 0x731B, 0x731E, 0x731F},
    "Navi12": {0x7360, 0x7362},
    "Navi14": {0x7340, 0x7341, 0x7347, 0x734F},
}
DISPLAY_MANAGERS = frozenset(
    {
        "gdm",
        "gdm3",
        "sddm",
        "lightdm",
        "lxdm",
        "xdm",
        "Xorg",
        "Xwayland",
        "gnome-shell",
        "kwin_wayland",
        "sway",
        "weston",
        "cosmic-comp",
        "Hyprland",
    }
)
VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")
MEMLOCK_SLACK = 1024**3  # QEMU locks guest RAM plus its own buffers
NO_GPU = "the spec passes no GPU through (gpu.devices is empty)"


def amd_reset_family(device: PciDevice) -> str | None:
    if device.vendor != AMD:
        return None
    for family, ids in AMD_RESET_BUG.items():
        if device.device in ids:
            return family
    return None


def check_iommu(fs: HostFs, pci: PciHost, needed: bool) -> CheckResult:
    flags = [arg for arg in fs.cmdline() if arg.split("=")[0] in ("intel_iommu", "amd_iommu", "iommu")]
    groups_dir = fs.path("/sys/kernel/iommu_groups")
    count = sum(1 for _ in groups_dir.iterdir()) if groups_dir.is_dir() else 0
    evidence = (
        f"kernel command line IOMMU flags: {' '.join(flags) or 'none'}",
        f"/sys/kernel/iommu_groups: {count} group{'s' if count != 1 else ''}",
    )
    if not needed:
        return skipped("iommu.enabled", NO_GPU, *evidence)
    if pci.iommu_enabled():
        return passed("iommu.enabled", f"the IOMMU is on ({count} groups)", *evidence)
    vendor = fs.cpu_vendor()
    flag = "amd_iommu=on" if vendor == "AuthenticAMD" else "intel_iommu=on"
    if any(f in ("intel_iommu=off", "amd_iommu=off") for f in flags):
        summary = "the kernel command line turns the IOMMU off"
    elif flags:
        summary = "the IOMMU is asked for on the kernel command line but the kernel made no groups"
    else:
        summary = "the IOMMU is off: no IOMMU groups, no IOMMU flag on the kernel command line"
    return failed(
        "iommu.enabled",
        summary,
        f"enable VT-d / AMD-Vi (IOMMU) in the firmware setup, add '{flag} iommu=pt' to GRUB_CMDLINE_LINUX "
        "in /etc/default/grub, run update-grub and reboot",
        *evidence,
    )


def check_gpu_group(
    pci: PciHost, selectors: tuple[str, ...], allow_shared: bool
) -> tuple[CheckResult, list[PciDevice]]:
    if not selectors:
        return skipped("gpu.group", NO_GPU), []
    try:
        devices = passthrough_devices(pci, selectors, allow_shared)
    except VmforgeError as exc:
        return failed("gpu.group", exc.message, exc.hint or "fix gpu.devices"), []
    groups = sorted({d.iommu_group for d in devices if d.iommu_group is not None})
    members = [m for g in groups for m in pci.group_members(g)]
    evidence = tuple(
        f"group {m.iommu_group}: {m.address} {m.id} class 0x{m.class_code:06x}"
        + (" (bridge, stays on the host)" if m.is_bridge else "")
        for m in members
    )
    passed_through = {d.address for d in devices}
    strangers = [m for m in members if not m.is_bridge and m.address not in passed_through]
    if strangers:
        listed = ", ".join(str(m.address) for m in strangers)
        return (
            warned(
                "gpu.group",
                f"gpu.allow_shared_group passes only the card while {listed} share its IOMMU group: "
                "those devices can reach the guest's memory (no isolation)",
                "move the card to a slot with its own group (check the board manual for CPU-attached slots)",
                *evidence,
            ),
            devices,
        )
    return (
        passed(
            "gpu.group",
            f"passing {', '.join(str(d.address) for d in devices)}: the group holds nothing else",
            *evidence,
        ),
        devices,
    )


def check_gpu_driver(devices: list[PciDevice]) -> CheckResult:
    if not devices:
        return skipped("gpu.driver", NO_GPU)
    evidence = tuple(f"{d.address} {d.id}: driver {d.driver or 'none'}" for d in devices)
    foreign = [d for d in devices if d.driver not in (None, "vfio-pci")]
    if not foreign:
        return passed("gpu.driver", "every function is on vfio-pci or unbound", *evidence)
    names = ", ".join(f"{d.address} ({d.driver})" for d in foreign)
    ids = ",".join(sorted({d.id for d in devices}))
    return warned(
        "gpu.driver",
        f"{names} is bound to a host driver; libvirt (managed='yes') unbinds it when the VM starts, "
        "which fails or hangs while the host still uses the card",
        f"bind the card to vfio-pci at boot: add 'vfio-pci.ids={ids}' to the kernel command line "
        f"(or 'options vfio-pci ids={ids}' in /etc/modprobe.d/vfio.conf plus softdep lines), "
        "update-initramfs -u, reboot",
        *evidence,
    )


def check_single_gpu(fs: HostFs, pci: PciHost, devices: list[PciDevice]) -> CheckResult:
    gpus = [d for d in devices if d.is_display]
    if not gpus:
        return skipped("gpu.single-gpu", NO_GPU)
    others = [d for d in pci.display_devices() if d.address not in {g.address for g in gpus}]
    boot = [g for g in gpus if g.boot_vga]
    framebuffers = fs.framebuffers()
    managers = sorted(DISPLAY_MANAGERS & fs.process_names())
    evidence = (
        "other display devices on the host: "
        + (", ".join(f"{d.address} ({d.driver or 'no driver'})" for d in others) or "none"),
        f"boot_vga: {', '.join(f'{g.address}={int(bool(g.boot_vga))}' for g in gpus)}",
        f"framebuffers (/proc/fb): {', '.join(framebuffers) or 'none'}",
        f"display servers running: {', '.join(managers) or 'none'}",
    )
    if others and not boot:
        return passed(
            "gpu.single-gpu", "the host keeps its own display device; the passed card is not the boot VGA", *evidence
        )
    consequences = []
    if not others:
        consequences.append(
            "the host has no other display: while the VM runs the host shows nothing (manage it over SSH)"
        )
    if boot:
        consequences.append(
            "the card is the boot VGA: the firmware's console and its framebuffer (efifb/simplefb) sit on it and keep "
            "it busy, and its ROM is shadowed (give gpu.rom)"
        )
    if managers:
        consequences.append(f"{', '.join(managers)} draws on a host GPU and must stop before the VM starts")
    fix = (
        "stop the display manager before starting the VM (and start it after), boot with 'video=efifb:off' "
        "(or unbind the framebuffer) so the card is free, and give gpu.rom a clean dump of the card's ROM"
    )
    if not others:
        return failed("gpu.single-gpu", "; ".join(consequences), fix + "; or add a second GPU for the host", *evidence)
    return warned("gpu.single-gpu", "; ".join(consequences), fix, *evidence)


def check_gpu_rom(devices: list[PciDevice], rom_file: Path | None) -> CheckResult:
    gpus = [d for d in devices if d.is_display]
    if not gpus:
        return skipped("gpu.rom", NO_GPU)
    if rom_file is not None:
        try:
            with rom_file.open("rb") as handle:
                head = handle.read(2)
        except OSError as exc:
            return failed(
                "gpu.rom",
                f"gpu.rom = '{rom_file}' cannot be read: {exc.strerror}",
                "fix the path or permissions of gpu.rom",
            )
        if head != b"\x55\xaa":
            return failed(
                "gpu.rom",
                f"gpu.rom = '{rom_file}' does not start with the PCI ROM signature 55 AA",
                "dump the ROM again (echo 1 > /sys/bus/pci/devices/ADDR/rom; cat rom > file; echo 0 > rom) "
                "or strip a vendor header (NVIDIA dumps from nvflash carry one)",
            )
        return passed("gpu.rom", f"gpu.rom = '{rom_file}' is readable and starts with 55 AA")
    without = [g for g in gpus if not g.has_rom]
    boot = [g for g in gpus if g.boot_vga]
    evidence = tuple(f"{g.address}: rom BAR {'present' if g.has_rom else 'absent'}" for g in gpus)
    if without:
        return warned(
            "gpu.rom",
            f"{', '.join(str(g.address) for g in without)} exposes no ROM BAR; the guest firmware may show nothing",
            "set gpu.rom to a dump of the card's ROM (from another host, or the vendor's image)",
            *evidence,
        )
    if boot:
        return warned(
            "gpu.rom",
            "the card is the boot VGA: its ROM image was modified when the host booted and often fails in the guest",
            "dump the ROM while the card is not the boot VGA (or use a vendor image) and set gpu.rom",
            *evidence,
        )
    return passed("gpu.rom", "the card exposes its ROM BAR (the guest reads it)", *evidence)


def check_gpu_reset(fs: HostFs, devices: list[PciDevice]) -> CheckResult:
    gpus = [d for d in devices if d.is_display]
    if not gpus:
        return skipped("gpu.reset", NO_GPU)
    evidence = tuple(f"{d.address} {d.id}: reset_method {' '.join(d.reset_methods) or 'none'}" for d in devices)
    for gpu in gpus:
        family = amd_reset_family(gpu)
        if family is None:
            continue
        if fs.module_loaded("vendor_reset") and "device_specific" in gpu.reset_methods:
            return passed(
                "gpu.reset", f"{gpu.address} is an AMD {family}: vendor-reset is loaded and selected", *evidence
            )
        state = "loaded but not selected" if fs.module_loaded("vendor_reset") else "not loaded"
        return failed(
            "gpu.reset",
            f"{gpu.address} ({gpu.id}) is an AMD {family}: its own reset leaves it dead until the host reboots, "
            f"and vendor-reset is {state}",
            "install vendor-reset (github.com/gnif/vendor-reset, dkms), load it at boot "
            "(echo vendor-reset > /etc/modules-load.d/vendor-reset.conf) and select it: "
            f"echo device_specific > /sys/bus/pci/devices/{gpu.address}/reset_method",
            *evidence,
        )
    missing = [d for d in gpus if not d.reset_methods]
    if missing:
        return warned(
            "gpu.reset",
            f"{', '.join(str(d.address) for d in missing)} offers no reset method: a guest reboot may leave the card "
            "in a bad state",
            "shut the VM down fully between runs; a bus reset needs the card alone behind its bridge",
            *evidence,
        )
    return passed("gpu.reset", "every passed GPU has a reset method", *evidence)


def check_vfio_modules(fs: HostFs, needed: bool) -> CheckResult:
    loaded = [m for m in VFIO_MODULES if fs.module_loaded(m)]
    container = fs.path("/dev/vfio/vfio").exists()
    evidence = (f"loaded: {', '.join(loaded) or 'none'}", f"/dev/vfio/vfio: {'present' if container else 'absent'}")
    if not needed:
        return skipped("vfio.modules", NO_GPU, *evidence)
    missing = [m for m in VFIO_MODULES if m not in loaded]
    if missing:
        return warned(
            "vfio.modules",
            f"{', '.join(missing)} not loaded (libvirt loads vfio-pci at VM start, which fails on kernels without it)",
            "modprobe vfio-pci, and load it at boot: printf 'vfio\\nvfio_iommu_type1\\nvfio_pci\\n' > "
            "/etc/modules-load.d/vfio.conf",
            *evidence,
        )
    return passed("vfio.modules", "vfio, vfio_iommu_type1 and vfio_pci are loaded", *evidence)


def check_memlock(fs: HostFs, memory: int, needed: bool, system_uri: bool) -> CheckResult:
    limit = fs.memlock_limit()
    shown = "unlimited" if limit is None else format_size(limit)
    evidence = (f"memlock limit of this session: {shown}",)
    if not needed:
        return skipped("vfio.memlock", NO_GPU, *evidence)
    if system_uri:
        return passed(
            "vfio.memlock",
            "qemu:///system: libvirtd raises QEMU's memlock limit to the guest's memory itself for VFIO guests",
            *evidence,
        )
    want = memory + MEMLOCK_SLACK
    if limit is not None and limit < want:
        return failed(
            "vfio.memlock",
            f"VFIO pins all guest memory: QEMU needs a memlock limit of at least {format_size(want)}, this session "
            f"has {shown}",
            "add '<user> hard memlock unlimited' and '<user> soft memlock unlimited' to "
            "/etc/security/limits.d/vmforge.conf and log in again (or use qemu:///system)",
            *evidence,
        )
    return passed("vfio.memlock", f"memlock limit {shown} covers {format_size(want)}", *evidence)


def check_hugepages(fs: HostFs, wanted: int | None) -> CheckResult:
    info = fs.meminfo()
    size = info.get("Hugepagesize", 2 * 1024**2)
    free = info.get("HugePages_Free", 0)
    evidence = (f"HugePages_Free: {free} of {info.get('HugePages_Total', 0)}, Hugepagesize {format_size(size)}",)
    if wanted is None:
        return skipped("memory.hugepages", "the spec does not ask for hugepages", *evidence)
    need = -(-wanted // size)
    if free < need:
        return failed(
            "memory.hugepages",
            f"{format_size(wanted)} of guest memory needs {need} free hugepages of {format_size(size)}; "
            f"{free} are free",
            f"echo {need} > /proc/sys/vm/nr_hugepages (or vm.nr_hugepages = {need} in /etc/sysctl.d/, "
            f"or hugepages={need} on the kernel command line)",
            *evidence,
        )
    return passed("memory.hugepages", f"{free} free hugepages cover {format_size(wanted)}", *evidence)
