"""Domain building: every domain-relevant spec field must reach the XML; bad input refused early."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests import fakesysfs
from tests.goldencases import DOMCAPS, FIRMWARE
from vmforge.domain.build import build_domain
from vmforge.domain.media import media_refs
from vmforge.domain.shapes import Shape
from vmforge.errors import SpecError, VmforgeError
from vmforge.host.domcaps import parse_domcaps
from vmforge.host.pci import PciHost
from vmforge.plan import HostFacts, resolve_plan
from vmforge.spec import parse_spec

ENV = {"HOME": "/home/u"}


def facts(pci: PciHost | None = None) -> HostFacts:
    return HostFacts(caps=parse_domcaps(DOMCAPS.read_text()), pci=pci, firmware_dirs=(FIRMWARE,))


def xml_for(data: dict[str, Any], shape: Shape = Shape.INSTALL, pci: PciHost | None = None) -> etree._Element:
    data = {"windows": {"family": "10"}, **data}
    plan = resolve_plan(parse_spec(data, label="t"), env=ENV, host=facts(pci))
    return build_domain(plan, shape, media=media_refs(plan, shape, Path("/pool"))).to_element()


def one(root: etree._Element, path: str) -> str:
    found = root.xpath(path)
    if isinstance(found, float):  # count(...)
        return str(found)
    assert isinstance(found, list) and len(found) == 1, f"{path}: {found}"
    return str(found[0])


# (spec override, XPath, value it must produce): a field missing here may never reach the XML.
FIELD_CASES = [
    ({"vm": {"name": "other"}}, "/domain/name/text()", "other"),
    ({"vm": {"virt_type": "qemu"}}, "/domain/@type", "qemu"),
    ({"vm": {"memory": "6GiB"}}, "/domain/memory/text()", str(6 * 1024**2)),
    ({"vm": {"vcpus": 6}}, "/domain/vcpu/text()", "6"),
    ({"vm": {"vcpus": 6}}, "/domain/cpu/topology/@cores", "6"),
    ({"vm": {"cpu": "host-model"}}, "/domain/cpu/@mode", "host-model"),
    ({"vm": {"cpu": "Skylake-Client"}}, "/domain/cpu/model/text()", "Skylake-Client"),
    ({"vm": {"firmware": "uefi-secure"}}, "/domain/os/loader/@secure", "yes"),
    ({"vm": {"vcpus": 2, "cpu_pinning": [6, 7]}}, "/domain/cputune/vcpupin[@vcpu='1']/@cpuset", "7"),
    ({"vm": {"hugepages": True}}, "count(/domain/memoryBacking/hugepages)", "1.0"),
    ({"vm": {"hibernate": True}}, "/domain/pm/suspend-to-disk/@enabled", "yes"),
    ({"vm": {"firmware": "uefi-secure"}}, "/domain/features/smm/@state", "on"),
    ({"vm": {"firmware": "bios"}}, "count(/domain/os/loader)", "0.0"),
    ({"vm": {"tpm": "on"}}, "/domain/devices/tpm/backend/@version", "2.0"),
    ({"vm": {"tpm": "off"}}, "count(/domain/devices/tpm)", "0.0"),
    ({"disk": {"pool": "fast"}}, "/domain/devices/disk[@device='disk']/source/@pool", "fast"),
    ({"disk": {"bus": "sata"}}, "/domain/devices/disk[@device='disk']/target/@bus", "sata"),
    ({"disk": {"bus": "scsi"}}, "/domain/devices/controller[@type='scsi']/@model", "virtio-scsi"),
    ({"network": {"type": "bridge", "source": "br7"}}, "/domain/devices/interface/source/@bridge", "br7"),
    ({"network": {"source": "isolated"}}, "/domain/devices/interface/source/@network", "isolated"),
    ({"network": {"mac": "52:54:00:00:00:01"}}, "/domain/devices/interface/mac/@address", "52:54:00:00:00:01"),
    ({"network": {"type": "none"}}, "count(/domain/devices/interface)", "0.0"),
    ({"display": {"resolution": "2560x1440"}}, "/domain/devices/video/model/resolution/@x", "2560"),
    ({"display": {"heads": 3}}, "/domain/devices/video/model/@heads", "3"),
    ({"display": {"vnc_listen": "0.0.0.0"}}, "/domain/devices/graphics/@listen", "0.0.0.0"),
    ({"display": {"vnc": False}}, "count(/domain/devices/graphics)", "0.0"),
    (
        {"windows": {"family": "10", "iso": "/x/win.iso"}},
        "/domain/devices/disk[serial='installer']/source/@volume",
        "win-installer.iso",
    ),
    (
        {"virtio_win": {"iso": "/x/vw.iso"}},
        "/domain/devices/disk[serial='virtio-win']/source/@volume",
        "win-virtio-win.iso",
    ),
    ({"ivshmem": {"enabled": True, "name": "lg"}}, "/domain/devices/shmem/@name", "lg"),
    ({"ivshmem": {"enabled": True, "size": "256MiB"}}, "/domain/devices/shmem/size/text()", "256"),
    ({"ivshmem": {"enabled": True, "model": "doorbell"}}, "/domain/devices/shmem/model/@type", "ivshmem-doorbell"),
    ({"gpu": {"devices": ["10de:2204"], "hide_hypervisor": True}}, "/domain/features/kvm/hidden/@state", "on"),
    ({"gpu": {"devices": ["10de:2204"], "rom": "/r.rom"}}, "/domain/devices/hostdev/rom/@file", "/r.rom"),
]


# Spec fields of the domain-relevant sections that deliberately do not appear in the XML.
NOT_IN_XML = {
    "vm.connect": "which daemon, not what it defines",
    "vm.snapshot": "create's last step (vmforge.images.snapshot), not the domain definition",
    "disk.size": "the volume's capacity (storage API), not the domain",
    "disk.pool_dir": "where a new pool lives (storage API)",
    "windows.family": "reaches the XML through firmware, TPM, bus and NIC defaults (golden files)",
    "gpu.allow_shared_group": "decides which functions pass (tests/unit/test_pci.py)",
    "display.idd_monitors": "guest side: MttVDD's vdd_settings.xml (tests/unit/test_packages_manifest.py)",
    "display.idd_resolutions": "guest side: MttVDD's vdd_settings.xml (tests/unit/test_packages_manifest.py)",
    "display.refresh_rates": "guest side: MttVDD's vdd_settings.xml (tests/unit/test_packages_manifest.py)",
}
DOMAIN_SECTIONS = ("vm", "disk", "network", "display", "virtio_win", "gpu", "ivshmem")


def test_every_domain_relevant_field_is_checked() -> None:
    from vmforge.spec import iter_fields

    covered = {
        f"{section}.{key}" for override, _, _ in FIELD_CASES for section, values in override.items() for key in values
    }
    fields = {name for name, _ in iter_fields() if name.split(".")[0] in DOMAIN_SECTIONS} | {"windows.iso"}
    missing = sorted(fields - covered - set(NOT_IN_XML))
    assert missing == [], f"spec fields never checked to reach the domain XML: {missing}"


@pytest.mark.parametrize(("override", "path", "expected"), FIELD_CASES)
def test_spec_field_reaches_xml(override: dict[str, Any], path: str, expected: str, tmp_path: Path) -> None:
    pci = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    root = xml_for(override, pci=pci)
    assert one(root, path) == expected


def test_shapes_boot_order_and_media() -> None:
    data = {"windows": {"family": "11", "iso": "/x/win.iso"}}
    install = xml_for(data, Shape.INSTALL)
    assert one(install, "/domain/devices/disk[boot/@order='1']/serial/text()") == "installer"
    assert one(install, "/domain/devices/disk[boot/@order='2']/@device") == "disk"
    assert one(install, "/domain/on_reboot/text()") == "destroy"
    assert install.xpath("/domain/devices/disk[@device='cdrom']/serial/text()") == ["installer", "answer", "virtio-win"]
    post = xml_for(data, Shape.POST_INSTALL)
    assert one(post, "/domain/devices/disk[boot/@order='1']/@device") == "disk"
    assert post.xpath("/domain/devices/disk[@device='cdrom']/serial/text()") == ["answer", "virtio-win"]
    assert one(post, "/domain/on_reboot/text()") == "restart"
    final = xml_for(data, Shape.FINAL)
    assert final.xpath("/domain/devices/disk[@device='cdrom']") == []


def test_gpu_brings_companion_audio_and_drops_the_balloon(tmp_path: Path) -> None:
    root = xml_for({"gpu": {"devices": ["0000:01:00.0"]}}, pci=PciHost(fakesysfs.two_gpu_workstation(tmp_path)))
    functions = root.xpath("/domain/devices/hostdev/source/address/@function")
    assert functions == ["0x0", "0x1"]
    assert one(root, "/domain/devices/memballoon/@model") == "none"
    assert root.xpath("/domain/devices/hostdev/@managed") == ["yes", "yes"]


def test_hyperv_only_on_kvm() -> None:
    kvm = xml_for({})
    assert one(kvm, "/domain/features/hyperv/spinlocks/@retries") == "8191"
    assert one(kvm, "/domain/clock/timer[@name='hypervclock']/@present") == "yes"
    tcg = xml_for({"vm": {"virt_type": "qemu"}})
    assert tcg.xpath("/domain/features/hyperv") == [] and tcg.xpath("/domain/clock/timer[@name='hypervclock']") == []


def test_ivshmem_size_rules() -> None:
    assert (
        one(xml_for({"ivshmem": {"enabled": True}, "display": {"resolution": "7680x4320"}}), "//shmem/size/text()")
        == "512"
    )
    with pytest.raises(SpecError, match=r"ivshmem.size = 64MiB is too small for 3840x2160 .* need 128MiB"):
        xml_for({"ivshmem": {"enabled": True, "size": "64MiB"}, "display": {"resolution": "3840x2160"}})
    with pytest.raises(SpecError, match="power of two"):
        xml_for({"ivshmem": {"enabled": True, "size": "96MiB"}})
    with pytest.raises(SpecError, match="7680x4320"):
        xml_for({"display": {"resolution": "8192x4320"}})


def test_pinning_needs_one_cpu_per_vcpu() -> None:
    with pytest.raises(SpecError, match="lists 1 host CPUs for 2 vCPUs"):
        xml_for({"vm": {"vcpus": 2, "cpu_pinning": [3]}})


def test_unresolved_plan_is_refused() -> None:
    plan = resolve_plan(parse_spec({"windows": {"family": "11"}}, label="t"), env=ENV)
    with pytest.raises(VmforgeError, match="without the libvirt host's capabilities"):
        build_domain(plan, Shape.INSTALL)


def test_gpu_plan_without_local_sysfs_is_refused() -> None:
    plan = resolve_plan(
        parse_spec({"windows": {"family": "10"}, "gpu": {"devices": ["10de:2204"]}}, label="t"),
        env=ENV,
        host=facts(None),
    )
    with pytest.raises(VmforgeError, match="not resolved against this host"):
        build_domain(plan, Shape.INSTALL)


def test_hide_hypervisor_under_tcg_hides_kvm_without_enlightenments(tmp_path: Path) -> None:
    pci = PciHost(fakesysfs.two_gpu_workstation(tmp_path))
    root = xml_for({"vm": {"virt_type": "qemu"}, "gpu": {"devices": ["10de:2204"], "hide_hypervisor": True}}, pci=pci)
    assert root.xpath("/domain/features/hyperv") == []
    assert one(root, "/domain/features/kvm/hidden/@state") == "on"


def test_a_named_cpu_model_carries_features_the_qemu_way() -> None:
    from vmforge.domain.cpu import Cpu, split_model

    root = etree.Element("domain")
    Cpu("qemu64,+rdrand,-svm", 2).element(root)
    cpu = root.find("cpu")
    assert cpu is not None and cpu.get("mode") == "custom" and cpu.findtext("model") == "qemu64"
    assert [(f.get("policy"), f.get("name")) for f in cpu.findall("feature")] == [
        ("require", "rdrand"),
        ("disable", "svm"),
    ]
    assert split_model("Skylake-Client") == ("Skylake-Client", ())
    for bad in ("qemu64,rdrand", "qemu64,+", "maximum,+rdrand"):
        with pytest.raises(ValueError):
            split_model(bad)
