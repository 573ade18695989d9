"""The plans behind tests/data/golden/domains/*.xml (shared by the unit and the integration test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import fakesysfs
from vmforge.domain.build import build_domain
from vmforge.domain.media import media_refs
from vmforge.domain.shapes import Shape
from vmforge.host.domcaps import parse_domcaps
from vmforge.host.pci import PciHost
from vmforge.ownership import OwnerTag, VolumeRef
from vmforge.plan import HostFacts, resolve_plan
from vmforge.spec import parse_spec

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden" / "domains"
DOMCAPS = DATA / "domcaps" / "qemu-q35-libvirt9.0.xml"
FIRMWARE = DATA / "firmware"
ENV = {"HOME": "/home/vmforge"}
ISO = "/srv/iso/windows.iso"
VIRTIO = "/srv/iso/virtio-win.iso"

Case = tuple[dict[str, Any], Shape, Callable[[Path], Path] | None]

CASES: dict[str, Case] = {
    "win11-uefi-secure-tpm-install": (
        {"vm": {"name": "win11"}, "windows": {"family": "11", "iso": ISO}, "virtio_win": {"iso": VIRTIO}},
        Shape.INSTALL,
        None,
    ),
    "win11-uefi-secure-tpm-post-install": (
        {"vm": {"name": "win11"}, "windows": {"family": "11", "iso": ISO}, "virtio_win": {"iso": VIRTIO}},
        Shape.POST_INSTALL,
        None,
    ),
    "win11-uefi-secure-tpm-final": (
        {"vm": {"name": "win11"}, "windows": {"family": "11", "iso": ISO}, "virtio_win": {"iso": VIRTIO}},
        Shape.FINAL,
        None,
    ),
    "win10-uefi-bridge": (
        {
            "vm": {"name": "win10", "memory": "8GiB", "vcpus": 4},
            "windows": {"family": "10", "iso": ISO},
            "network": {"type": "bridge", "source": "br0", "mac": "52:54:00:AB:CD:EF"},
        },
        Shape.INSTALL,
        None,
    ),
    "win7-bios-sata": (
        {"vm": {"name": "win7", "virt_type": "qemu"}, "windows": {"family": "7", "iso": ISO}},
        Shape.INSTALL,
        None,
    ),
    "server2022-core-bios-scsi": (
        {
            "vm": {"name": "srv2022", "firmware": "bios", "cpu": "Skylake-Server"},
            "windows": {"family": "2022", "iso": ISO},
            "disk": {"bus": "scsi"},
            "network": {"type": "user"},
            "display": {"vnc": False},
        },
        Shape.INSTALL,
        None,
    ),
    "gpu-rom-audio-ivshmem-doorbell": (
        {
            "vm": {"name": "gpuvm", "memory": "16GiB", "vcpus": 8},
            "windows": {"family": "10", "iso": ISO},
            "gpu": {"devices": ["10de:2204"], "rom": "/var/lib/vmforge/rtx3090.rom", "hide_hypervisor": True},
            "ivshmem": {"enabled": True, "model": "doorbell"},
            "display": {"resolution": "3840x2160"},
        },
        Shape.POST_INSTALL,
        fakesysfs.two_gpu_workstation,
    ),
    "ivshmem-plain-4k": (
        {
            "vm": {"name": "lgvm"},
            "windows": {"family": "11", "iso": ISO},
            "ivshmem": {"enabled": True},
            "display": {"resolution": "3840x2160"},
        },
        Shape.FINAL,
        None,
    ),
    "tuned-pinning-hugepages-hibernate": (
        {
            "vm": {"name": "tuned", "vcpus": 4, "cpu_pinning": [2, 3, 6, 7], "hugepages": True, "hibernate": True},
            "windows": {"family": "2025", "iso": ISO},
        },
        Shape.POST_INSTALL,
        None,
    ),
    "virtio-gpu-8k-multihead": (
        {
            "vm": {"name": "win8k"},
            "windows": {"family": "11", "iso": ISO},
            "display": {"resolution": "7680x4320", "heads": 4},
            "ivshmem": {"enabled": True},
            "network": {"type": "none"},
        },
        Shape.FINAL,
        None,
    ),
}


def render_case(name: str, tmp_path: Path) -> str:
    data, shape, sysfs = CASES[name]
    spec = parse_spec(data, label=name)
    pci = PciHost(sysfs(tmp_path / "sysfs")) if sysfs else None
    facts = HostFacts(caps=parse_domcaps(DOMCAPS.read_text()), pci=pci, firmware_dirs=(FIRMWARE,))
    plan = resolve_plan(spec, env=ENV, host=facts)
    assert plan.disk.pool_dir is not None
    volume = VolumeRef(plan.disk.pool, plan.disk.volume, str(plan.disk.pool_dir / plan.disk.volume))
    media = media_refs(plan, shape, plan.disk.pool_dir)
    # Fixed hashes and time: goldens must not churn whenever a spec field is added elsewhere.
    tag = OwnerTag(
        vm=plan.name,
        spec_hash="spec-hash",
        plan_hash="plan-hash",
        created="2026-01-01T00:00:00+00:00",
        volumes=(volume, *media.values()),
    )
    return build_domain(plan, shape, tag, media=media).to_xml()
