"""``vmforge doctor`` run for real on this host: the report must say what /sys, /dev and the
libvirt daemon really say.  (On this kind of machine /dev/kvm exists but guests hang under it,
and there is no IOMMU: the doctor has to report both truthfully.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from pools import qemu_reachable_folder

from vmforge.doctor.checks_libvirt import show, version_tuple
from vmforge.host.pci import PciHost

pytestmark = pytest.mark.integration

# The probe image is cached per machine (as the probe's own tests do): read before the autouse
# fixture points XDG_CACHE_HOME at a per-test folder.
MACHINE_CACHE_ENV = {"XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")}

TCG_SPEC = """
os = "probe"
[vm]
name = "vmft-doc-probe"
connect = "qemu:///system"
virt_type = "qemu"
firmware = "bios"
tpm = "off"
[disk]
size = "1GiB"
"""


def checks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    report = doc["error"]["report"] if "error" in doc else doc
    return {c["id"]: c for c in report["checks"]}


def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vmforge.toml"
    path.write_text(text)
    return path


def test_default_spec_report_matches_the_host(vmforge: Any) -> None:
    result = vmforge("doctor", "--json")
    doc = result.json()
    found = checks(doc)
    # No windows.iso / virtio_win.iso in the default spec: those fail, so the exit code is 3.
    assert result.code == 3, result.stderr
    assert doc["error"]["exit_code"] == 3 and "media.windows-iso" in doc["error"]["message"]
    assert found["libvirt.reachable"]["status"] == "pass"
    conn = libvirt.open("qemu:///system")
    try:
        library, qemu = show(version_tuple(conn.getLibVersion())), show(version_tuple(conn.getVersion()))
    finally:
        conn.close()
    assert found["libvirt.versions"]["evidence"] == [f"libvirt {library}", f"QEMU {qemu}"]
    assert found["libvirt.domcaps"]["status"] == "pass"
    assert found["firmware.uefi"]["status"] == "pass"  # ovmf is installed (scripts/setup-host)
    assert found["tpm.swtpm"]["status"] == "pass"  # swtpm too
    kvm = Path("/dev/kvm")
    if kvm.exists():
        assert found["kvm.device"]["status"] == "pass"
        mode = stat.S_IMODE(kvm.stat().st_mode)
        assert f"{mode:04o}" in found["kvm.access"]["evidence"][0]
    else:
        assert found["kvm.device"]["status"] == "fail"
    assert found["kvm.boot"]["status"] == "skip"


def test_gpu_spec_reports_the_real_iommu_state(vmforge: Any, tmp_path: Path) -> None:
    pci = PciHost(Path("/"))
    devices = pci.devices()
    assert devices, "this host shows no PCI devices in /sys/bus/pci/devices"
    spec = write_spec(tmp_path, f'[windows]\nfamily = "10"\n[gpu]\ndevices = ["{devices[0].address}"]\n')
    doc = vmforge("doctor", "--json", "--spec", str(spec)).json()
    found = checks(doc)
    groups = Path("/sys/kernel/iommu_groups")
    count = len(list(groups.iterdir())) if groups.is_dir() else 0
    iommu = found["iommu.enabled"]
    assert iommu["status"] == ("pass" if count else "fail")
    assert f"/sys/kernel/iommu_groups: {count} group" in iommu["evidence"][1]
    cmdline_flags = [
        a for a in Path("/proc/cmdline").read_text().split() if a.split("=")[0] in ("intel_iommu", "amd_iommu", "iommu")
    ]
    assert iommu["evidence"][0] == f"kernel command line IOMMU flags: {' '.join(cmdline_flags) or 'none'}"
    group = found["gpu.group"]
    if not devices[0].is_display:
        assert group["status"] == "fail" and "is not a display device" in group["summary"]
    elif not count:
        assert group["status"] == "fail" and "no IOMMU groups" in group["summary"]
    loaded = [m for m in ("vfio", "vfio_iommu_type1", "vfio_pci") if Path("/sys/module", m).is_dir()]
    assert found["vfio.modules"]["evidence"][0] == f"loaded: {', '.join(loaded) or 'none'}"


def test_tcg_probe_spec_passes_with_exit_zero(vmforge: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, TCG_SPEC)
    result = vmforge("doctor", "--json", "--spec", str(spec))
    doc = result.json()
    assert result.code == 0, doc
    assert doc["ok"] is True and doc["counts"]["fail"] == 0
    found = checks(doc)
    assert found["libvirt.cpu-mode"]["status"] == "pass"  # 'maximum' under TCG
    assert found["firmware.uefi"]["status"] == "skip"
    human = vmforge("doctor", "--spec", str(spec))
    assert human.code == 0
    assert "PASS  libvirt.reachable" in human.stdout and " failed, " in human.stdout
    assert "daemon host:" not in human.stdout  # evidence of passing checks only with -v
    verbose = vmforge("doctor", "-v", "--spec", str(spec))
    assert "· daemon host:" in verbose.stdout


def test_broken_uri_fails_with_exit_three(vmforge: Any, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, TCG_SPEC.replace("qemu:///system", "qemu+unix:///system?socket=/nonexistent/sock"))
    result = vmforge("doctor", "--spec", str(spec))
    assert result.code == 3
    assert "FAIL  libvirt.reachable" in result.stdout and "libvirtd -d" in result.stdout
    assert "error: 1 check failed: libvirt.reachable" in result.stderr


BOOT_POOL = "vmft-s2p-doc-pool"


@pytest.fixture
def boot_pool_dir() -> Iterator[Path]:
    """A pool folder QEMU (libvirt-qemu) can reach (not below pytest's 0700 tmp), removed with
    its libvirt pool afterwards."""
    with qemu_reachable_folder(BOOT_POOL, BOOT_POOL) as base:
        yield base


@pytest.mark.parametrize("virt_type", ["kvm", "qemu"])
def test_boot_test_boots_the_probe_through_libvirtd(
    vmforge: Any, tmp_path: Path, boot_pool_dir: Path, virt_type: str
) -> None:
    name = f"vmft-s2p-doc-{virt_type}"
    text = TCG_SPEC.replace('virt_type = "qemu"', f'virt_type = "{virt_type}"').replace("vmft-doc-probe", name)
    text += f'pool = "{BOOT_POOL}"\npool_dir = "{boot_pool_dir}"\n'
    spec = write_spec(tmp_path, text)
    result = vmforge("doctor", "--json", "--boot-test", "--spec", str(spec), env=MACHINE_CACHE_ENV, timeout=600)
    boot = checks(result.json())["kvm.boot"]
    if virt_type == "qemu":
        assert boot["status"] == "pass", boot
        assert (
            boot["evidence"][0].startswith("tcg: booted after ") and "VMFORGE-PHASE probe-init" in boot["evidence"][0]
        )
    elif boot["status"] == "fail":  # nested KVM, as on this machine: the probe hangs under KVM
        assert boot["summary"].startswith("KVM is unusable"), boot
        assert "no sign of init within 30s" in boot["evidence"][0], boot
        assert boot["evidence"][-1].startswith("tcg control: booted"), boot
        assert boot["fix"].startswith('set vm.virt_type = "qemu"')
        assert result.code == 3
    else:  # a host with working KVM
        assert boot["status"] == "pass", boot
    # The boot-test domain went through vmforge's domain XML and is gone again, disk included.
    conn = libvirt.open("qemu:///system")
    try:
        assert not [d.name() for d in conn.listAllDomains(0) if d.name().startswith(name)]
        pool = conn.storagePoolLookupByName(BOOT_POOL)
        assert [v for v in pool.listVolumes() if v != ".vmforge-pool"] == []
    finally:
        conn.close()
