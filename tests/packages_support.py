"""Build small guest packages in a test's folder: a stamped IDD-like driver and shell apps."""

from __future__ import annotations

import hashlib
from pathlib import Path

SIGNER_CER = Path(__file__).resolve().parent / "data" / "packages" / "test-signer.cer"

# A stamped INF written for these tests (the shape of an IDD's: class Display, root hardware id).
IDD_INF = """; vmforge test IDD
[Version]
Signature   = "$Windows NT$"
Class       = Display
ClassGuid   = {{4D36E968-E325-11CE-BFC1-08002BE10318}}
Provider    = %Vendor%
CatalogFile = TestIdd.cat
DriverVer   = {driver_ver}
PnpLockdown = 1

[Manufacturer]
%Vendor% = Devices, NTamd64.10.0...19041, NTarm64.10.0...19041

[Devices.NTamd64.10.0...19041]
%Device% = Install, Root\\TestIdd

[Devices.NTarm64.10.0...19041]
%Device% = Install, Root\\TestIdd

[SourceDisksNames]
1 = %Disk%

[SourceDisksFiles]
TestIdd.dll = 1

[Strings]
Vendor = "vmforge tests"
Device = "Test Indirect Display"
Disk   = "Test disk"
"""


def write_idd_package(
    folder: Path,
    *,
    driver_ver: str = "03/14/2025,1.2.0.0",
    dll: bytes = b"MZ test idd v1",
    pin_hashes: bool = True,
    name: str = "testidd",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "TestIdd.inf").write_bytes(b"\xff\xfe" + IDD_INF.format(driver_ver=driver_ver).encode("utf-16-le"))
    (folder / "TestIdd.cat").write_bytes(b"0\x82 test catalog")
    (folder / "TestIdd.dll").write_bytes(dll)
    (folder / "TestIdd.cer").write_bytes(SIGNER_CER.read_bytes())
    files = ""
    for file_name in ("TestIdd.inf", "TestIdd.cat", "TestIdd.dll", "TestIdd.cer"):
        digest = hashlib.sha256((folder / file_name).read_bytes()).hexdigest()
        files += f'\n[[files]]\npath = "{file_name}"\n' + (f'sha256 = "{digest}"\n' if pin_hashes else "")
    (folder / "settings.xml.j2").write_text(
        "<vdd_settings><monitors><count>{{ display.monitors }}</count></monitors>"
        "{% for m in display.resolutions %}<resolution><width>{{ m.width }}</width>"
        "<height>{{ m.height }}</height></resolution>{% endfor %}</vdd_settings>\n"
    )
    (folder / "package.toml").write_text(
        f"""name = "{name}"
kind = "driver"
version = "1"
min_windows = 19041

[driver]
inf = "TestIdd.inf"
certificate = "TestIdd.cer"
hardware_id = 'Root\\TestIdd'
root_device = true
device_class = "Display"
{files}
[[config]]
template = "settings.xml.j2"
destination = 'C:\\VirtualDisplayDriver\\vdd_settings.xml'
"""
    )
    return folder


def write_shell_app(
    folder: Path,
    guest_root: Path,
    *,
    version: str = "1",
    payload: bytes = b"payload v1\n",
    install_exit: int = 0,
    name: str = "shellapp",
) -> Path:
    """An app for a Linux guest: install copies the payload into ``guest_root/installed``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bin").mkdir(exist_ok=True)
    (folder / "bin" / "payload.bin").write_bytes(payload)
    (folder / "big.bin").write_bytes(hashlib.sha256(payload).digest() * 40_000)  # 1.28 MB, many chunks
    (folder / "app.conf.j2").write_text(
        "monitors={{ display.monitors }}\n"
        "{% for m in display.resolutions %}mode={{ m.width }}x{{ m.height }}\n{% endfor %}"
        "rates={{ display.refresh_rates | join(',') }}\n"
    )
    installed = guest_root / "installed"
    exit_part = f" && exit {install_exit}" if install_exit else ""
    command = (
        f"mkdir -p {installed} && cp {{stage}}/bin/payload.bin {installed}/payload.bin "
        f"&& echo run >> {guest_root}/install-runs{exit_part}"
    )
    (folder / "package.toml").write_text(
        f"""name = "{name}"
kind = "app"
version = "{version}"
os = ["linux"]

[app]
install = [
    "{command}",
]
verify = ["cmp {{stage}}/bin/payload.bin {installed}/payload.bin"]

[[files]]
path = "bin/payload.bin"
sha256 = "{hashlib.sha256(payload).hexdigest()}"

[[files]]
path = "big.bin"

[[config]]
template = "app.conf.j2"
destination = "{guest_root}/etc/app.conf"
"""
    )
    return folder
