"""The probe transform: which plan fields change (and only those), and the XML vmforge's builder
makes from the result (direct kernel boot, BIOS, TCG CPU, media CDs kept, installer dropped)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.goldencases import DOMCAPS, FIRMWARE
from vmforge.domain.build import build_domain
from vmforge.domain.media import media_refs, media_sources
from vmforge.domain.shapes import Shape
from vmforge.errors import VmforgeError
from vmforge.host.domcaps import parse_domcaps
from vmforge.plan import DirectBoot, HostFacts, Plan, resolve_plan
from vmforge.probe.report import parse_report
from vmforge.probe.transform import probe_as_vm, probe_name, probe_plan
from vmforge.spec import Firmware, parse_spec

ENV = {"HOME": "/home/u"}
BOOT = DirectBoot(
    Path("/var/lib/vmforge/probe/k/vmlinuz"), Path("/var/lib/vmforge/probe/k/initrd.img"), "console=ttyS0"
)
WINDOWS_11 = {
    "vm": {"name": "win", "virt_type": "qemu", "tpm": "on"},
    "windows": {"family": "11", "iso": "/isos/win11.iso"},
    "virtio_win": {"iso": "/isos/virtio-win.iso"},
    "ivshmem": {"enabled": True},
}


def plan_for(data: dict[str, Any]) -> Plan:
    host = HostFacts(caps=parse_domcaps(DOMCAPS.read_text()), pci=None, firmware_dirs=(FIRMWARE,))
    return resolve_plan(parse_spec(data, label="t"), env=ENV, host=host)


def probe_xml(plan: Plan) -> etree._Element:
    shape = Shape.POST_INSTALL
    return build_domain(plan, shape, media=media_refs(plan, shape, Path("/pool"))).to_element()


def test_the_transform_changes_only_what_the_probe_needs() -> None:
    plan = plan_for(WINDOWS_11)
    assert plan.firmware is Firmware.UEFI_SECURE and plan.uefi is not None
    probe = probe_plan(plan, BOOT)
    changed = {f.name for f in dataclasses.fields(Plan) if getattr(plan, f.name) != getattr(probe, f.name)}
    assert changed == {
        "name", "vm_dir", "direct_boot", "firmware", "uefi", "cpu_mode", "disk", "ivshmem", "media",
        "serial_log", "notes",
    }  # fmt: skip
    assert probe.name == "win-probe" and probe.disk.volume == "win-probe.qcow2"
    assert probe.direct_boot == BOOT  # a Windows plan's disk is not formatted by the probe
    assert probe.disk.bus == plan.disk.bus and probe.disk.size == plan.disk.size
    assert probe.ivshmem is not None and plan.ivshmem is not None
    assert probe.ivshmem.path == Path("/dev/shm/vmforge-win-probe") and probe.ivshmem.size == plan.ivshmem.size
    assert probe.media is not None and probe.media.installer_iso is None
    assert probe.media.virtio_win_iso == Path("/isos/virtio-win.iso")
    assert (probe.tpm, probe.memory, probe.vcpus) == (plan.tpm, plan.memory, plan.vcpus)


def test_the_probe_domain_boots_the_kernel_with_bios_and_keeps_the_devices() -> None:
    root = probe_xml(probe_plan(plan_for(WINDOWS_11), BOOT))
    assert root.findtext("os/kernel") == str(BOOT.kernel)
    assert root.findtext("os/initrd") == str(BOOT.initrd)
    # The domain tells the probe how many CD drives to wait for (answer and virtio-win).
    assert root.findtext("os/cmdline") == "console=ttyS0 vmforge.cds=2 vmforge.sata=2"
    assert root.find("os/loader") is None and root.find("os/nvram") is None
    assert root.find("features/smm") is None
    assert root.findtext("cpu/model") == "qemu64"
    assert [(f.get("policy"), f.get("name")) for f in root.findall("cpu/feature")] == [("require", "rdrand")]
    assert root.find("devices/tpm") is not None
    assert root.find("devices/shmem[@name='vmforge-win-probe']/model").get("type") == "ivshmem-plain"
    assert [d.findtext("serial") for d in root.findall("devices/disk[@device='cdrom']")] == ["answer", "virtio-win"]
    assert root.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is not None


def test_a_probe_spec_without_media_gets_no_cd_and_an_answer_iso_is_attached_when_given() -> None:
    data = {"os": "probe", "vm": {"name": "p", "virt_type": "qemu"}}
    bare = probe_plan(plan_for(data), BOOT)
    assert bare.direct_boot is not None and bare.direct_boot.cmdline == "console=ttyS0 vmforge.disk=vda"
    assert bare.media is None and media_sources(bare, Shape.POST_INSTALL) == {}
    assert probe_xml(bare).find("devices/disk[@device='cdrom']") is None
    assert probe_xml(bare).findtext("os/cmdline") == "console=ttyS0 vmforge.disk=vda vmforge.cds=0 vmforge.sata=0"
    sata_disk = probe_plan(plan_for({**data, "disk": {"bus": "sata"}}), BOOT)
    assert probe_xml(sata_disk).findtext("os/cmdline").endswith("vmforge.cds=0 vmforge.sata=1")  # AHCI needed
    with_answer = probe_plan(plan_for(data), BOOT, answer_iso=Path("/tmp/answer.iso"))
    assert media_sources(with_answer, Shape.POST_INSTALL) == {"answer": Path("/tmp/answer.iso")}


def test_kvm_keeps_the_spec_cpu_and_long_names_stay_valid() -> None:
    plan = plan_for({**WINDOWS_11, "vm": {"name": "w" * 63, "virt_type": "kvm"}})
    probe = probe_plan(plan, BOOT)
    assert probe.cpu_mode == plan.cpu_mode == "host-passthrough"
    assert len(probe.name) == 63 and probe.name.endswith("-probe")
    assert probe_name("x") == "x-probe"


def test_report_lines_parse_and_an_unknown_line_is_refused() -> None:
    facts = parse_report(
        "pci 0000:00:01.0 1af4:1110 050000\nmemory_kib 480000\ncpus 2\ncd sr0 VMFORGE\n"
        "file sr0 1234 autounattend.xml\nfile sr0 9 $WinPEDriver$/viostor/w11 x.inf\ndisk vda 1073741824\n"
    )
    assert facts.device("1af4:1110") is not None and (facts.memory_kib, facts.cpus) == (480000, 2)
    assert facts.files["sr0"] == {"autounattend.xml": 1234, "$WinPEDriver$/viostor/w11 x.inf": 9}
    assert facts.disks == {"vda": 1073741824}
    with pytest.raises(VmforgeError, match="unreadable line 1"):
        parse_report("surprise 1\n")
    with pytest.raises(VmforgeError, match="unreadable line 2"):
        parse_report("cpus 1\ncpus many\n")


def test_tpm_plans_boot_the_bzimage_and_the_others_the_pvh_vmlinux(tmp_path: Path) -> None:
    from vmforge.probe.image import ProbeImage
    from vmforge.probe.run import boot_kernel, stage_image

    image = ProbeImage("k", tmp_path / "vmlinux", tmp_path / "initrd.img", "console=ttyS0", {})
    with_tpm = plan_for({**WINDOWS_11, "vm": {**WINDOWS_11["vm"], "connect": "qemu:///session"}})
    without = plan_for({"os": "probe", "vm": {"name": "p", "virt_type": "qemu", "connect": "qemu:///session"}})
    assert with_tpm.tpm and not without.tpm
    assert boot_kernel(image, with_tpm) == tmp_path / "vmlinuz"
    assert boot_kernel(image, without) == tmp_path / "vmlinux"
    # qemu:///session reads the cache in place: the chosen kernel goes straight into the plan.
    assert stage_image(image, with_tpm).kernel == tmp_path / "vmlinuz"
    assert stage_image(image, without).kernel == tmp_path / "vmlinux"


def test_a_vm_that_is_the_probe_keeps_its_own_identity() -> None:
    plan = plan_for({"os": "probe", "vm": {"name": "pv", "virt_type": "qemu"}, "ivshmem": {"enabled": True}})
    booted = probe_as_vm(plan, BOOT)
    assert (booted.name, booted.vm_dir, booted.disk, booted.ivshmem, booted.serial_log) == (
        plan.name,
        plan.vm_dir,
        plan.disk,
        plan.ivshmem,
        plan.serial_log,
    )
    assert booted.media is None  # no answer ISO given: no CD
    assert booted.firmware is Firmware.BIOS and booted.direct_boot is not None
    assert booted.direct_boot.cmdline.endswith("vmforge.disk=vda")  # the probe formats its own disk
    answer = Path("/state/pv/media/answer-1.iso")
    with_media = probe_as_vm(plan, BOOT, answer)
    assert with_media.media is not None and with_media.media.answer_iso == answer
