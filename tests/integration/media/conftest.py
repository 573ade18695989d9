"""Session fixtures: real WIM/ESD files (wimtools) inside Windows-like ISOs (pycdlib).

Building them needs wimtools; when it is missing the tests fail (CI installs it through
scripts/setup-host), they never skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.media_factory import FakeImage, build_iso, build_wim

WIN11_IMAGES = (
    FakeImage("Windows 11 Home", "Core", 26100, description="Windows 11 Home"),
    FakeImage("Windows 11 Pro", "Professional", 26100, description="Windows 11 Pro"),
    FakeImage("Windows 11 Education", "Education", 26100, languages=("en-US", "de-DE")),
)
SERVER2022_IMAGES = (
    FakeImage("Windows Server 2022 Standard", "ServerStandard", 20348, "Server Core"),
    FakeImage("Windows Server 2022 Standard (Desktop Experience)", "ServerStandard", 20348, "Server"),
    FakeImage("Windows Server 2022 Datacenter", "ServerDatacenter", 20348, "Server Core"),
    FakeImage("Windows Server 2022 Datacenter (Desktop Experience)", "ServerDatacenter", 20348, "Server"),
)
WIN7_IMAGES = (FakeImage("Windows 7 PROFESSIONAL", "Professional", 7601, major=6, minor=1),)


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing host tools {missing}; run scripts/setup-host")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("wimcapture", "wimappend", "wimexport", "wiminfo", "xorriso", "isoinfo", "osinfo-detect")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def win11_iso(media_dir: Path) -> Path:
    wim = build_wim(media_dir / "win11-install.wim", WIN11_IMAGES)
    boot = build_wim(
        media_dir / "win11-boot.wim",
        (
            FakeImage("Microsoft Windows PE (amd64)", "WindowsPE", 26100),
            FakeImage("Microsoft Windows Setup (amd64)", "WindowsPE", 26100),
        ),
    )
    return build_iso(media_dir / "win11.iso", {"sources/install.wim": wim, "sources/boot.wim": boot})


@pytest.fixture(scope="session")
def win11_esd_iso(media_dir: Path) -> Path:
    esd = build_wim(media_dir / "win11-install.esd", WIN11_IMAGES, esd=True)
    return build_iso(media_dir / "win11-esd.iso", {"sources/install.esd": esd}, udf_only=False)


@pytest.fixture(scope="session")
def server2022_iso(media_dir: Path) -> Path:
    wim = build_wim(media_dir / "s2022-install.wim", SERVER2022_IMAGES)
    return build_iso(media_dir / "s2022.iso", {"sources/install.wim": wim}, volume_id="SSS_X64FREE_EN-US_DV9")


@pytest.fixture(scope="session")
def win7_iso(media_dir: Path) -> Path:
    wim = build_wim(media_dir / "w7-install.wim", WIN7_IMAGES)
    return build_iso(media_dir / "w7.iso", {"sources/install.wim": wim}, volume_id="GRMCPRXFRER_EN_DVD", uefi=False)


@pytest.fixture(scope="session")
def virtio_win_iso(media_dir: Path) -> Path:
    """The virtio-win ISO's real folder layout, with small stand-in driver files."""
    files: dict[str, bytes] = {}
    for driver in ("viostor", "vioscsi", "NetKVM", "Balloon", "vioserial"):
        for os_dir in ("w7", "w10", "w11", "2k19", "2k22", "2k25"):
            for arch in ("amd64", "x86"):
                if os_dir in ("w11", "2k19", "2k22", "2k25") and arch == "x86":
                    continue
                base = f"{driver}/{os_dir}/{arch}/{driver.lower()}"
                files[f"{base}.inf"] = f"; {driver} for {os_dir} {arch}\r\n[Version]\r\n".encode()
                files[f"{base}.sys"] = b"MZ" + driver.encode() + os_dir.encode()
                files[f"{base}.cat"] = b"0\x82" + os_dir.encode()
    files["guest-agent/qemu-ga-x86_64.msi"] = b"\xd0\xcf\x11\xe0" + b"\0" * 60
    files["virtio-win-gt-x64.msi"] = b"\xd0\xcf\x11\xe0" + b"\0" * 60
    return build_iso(
        media_dir / "virtio-win.iso",
        files,
        volume_id="virtio-win-0.1.262",
        publisher="",
        bios=False,
        uefi=False,
        udf_only=False,
    )
