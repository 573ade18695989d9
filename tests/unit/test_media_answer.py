"""Answer files rendered from answer-files/ templates: golden files, choices, bad input."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.golden import assert_golden
from vmforge.errors import SpecError, VmforgeError
from vmforge.media.answer import obfuscate_password, render_answer
from vmforge.media.iso_inspect import IsoInspection
from vmforge.media.validate import validate_bytes
from vmforge.media.wim import WimImage
from vmforge.plan import resolve_plan
from vmforge.spec import Spec, WindowsFamily, parse_spec

PASSWORD = "Golden-Pass-1"
NS = {"u": "urn:schemas-microsoft-com:unattend"}


def image(index: int, name: str, edition: str, build: int, kind: str = "Client", arch: str = "amd64", major: int = 10,
          minor: int = 0) -> WimImage:  # fmt: skip
    return WimImage(
        index=index, name=name, edition_id=edition, arch=arch, installation_type=kind, major=major, minor=minor,
        build=build, languages=("en-US",),
    )  # fmt: skip


ISOS: dict[str, tuple[WindowsFamily, tuple[WimImage, ...]]] = {
    "win10": (
        WindowsFamily.W10,
        (image(1, "Windows 10 Home", "Core", 19045), image(2, "Windows 10 Pro", "Professional", 19045)),
    ),
    "win11-23h2": (
        WindowsFamily.W11,
        (image(1, "Windows 11 Home", "Core", 22631), image(2, "Windows 11 Pro", "Professional", 22631)),
    ),
    "win11-24h2": (
        WindowsFamily.W11,
        (
            image(1, "Windows 11 Home", "Core", 26100),
            image(5, "Windows 11 Pro", "Professional", 26100),
            image(6, "Windows 11 Education", "Education", 26100),
        ),
    ),
    "server2019": (
        WindowsFamily.S2019,
        (
            image(1, "Windows Server 2019 Standard", "ServerStandard", 17763, "Server Core"),
            image(2, "Windows Server 2019 Standard (Desktop Experience)", "ServerStandard", 17763, "Server"),
        ),
    ),
    "server2022": (
        WindowsFamily.S2022,
        (
            image(1, "Windows Server 2022 Datacenter", "ServerDatacenter", 20348, "Server Core"),
            image(2, "Windows Server 2022 Datacenter (Desktop Experience)", "ServerDatacenter", 20348, "Server"),
        ),
    ),
    "server2025": (
        WindowsFamily.S2025,
        (
            image(1, "Windows Server 2025 Standard", "ServerStandard", 26100, "Server Core"),
            image(2, "Windows Server 2025 Standard (Desktop Experience)", "ServerStandard", 26100, "Server"),
        ),
    ),
    "win81": (WindowsFamily.W81, (image(1, "Windows 8.1 Pro", "Professional", 9600, major=6, minor=3),)),
    "win10-x86": (WindowsFamily.W10, (image(1, "Windows 10 Pro", "Professional", 19045, arch="x86"),)),
    "win7": (WindowsFamily.W7, (image(1, "Windows 7 PROFESSIONAL", "Professional", 7601, major=6, minor=1),)),
}


def inspection(kind: str) -> IsoInspection:
    family, images = ISOS[kind]
    return IsoInspection(
        path=Path(f"/isos/{kind}.iso"), volume_id="X", publisher="MICROSOFT CORPORATION", filesystems=("udf",),
        boot=("bios", "uefi"), install_file="/sources/install.wim", install_format="wim", images=images,
        boot_wim_images=2, family=family, arches=tuple(sorted({i.arch or "amd64" for i in images})),
    )  # fmt: skip


def spec_for(**windows: Any) -> Spec:
    data: dict[str, Any] = {"vm": {"name": "golden"}, "windows": windows}
    vm = windows.pop("vm", None)
    if vm:
        data["vm"].update(vm)
    disk = windows.pop("disk", None)
    if disk:
        data["disk"] = disk
    return parse_spec(data, label="test")


def render(kind: str, **windows: Any) -> str:
    spec = spec_for(**windows)
    iso = inspection(kind)
    plan = resolve_plan(spec, media=iso.media_facts())
    return render_answer(spec.windows, plan, iso, PASSWORD).text


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "win10-uefi": ("win10", {}),
    "win11-secure-tpm": ("win11-23h2", {}),
    "win11-24h2-bios-bypass": (
        "win11-24h2",
        {"vm": {"firmware": "bios", "tpm": "off"}, "edition": "Windows 11 Education"},
    ),
    "win11-24h2-recovery-de": (
        "win11-24h2",
        {
            "recovery_partition": True,
            "locale": "de-DE",
            "keyboard": "de-DE",
            "timezone": "W. Europe Standard Time",
            "computer_name": "DESK-01",
            "admin_user": "admin",
        },
    ),
    "server2019-desktop": ("server2019", {}),
    "server2022-core": ("server2022", {"edition": 1}),
    "server2025-desktop": ("server2025", {}),
    "win81-uefi": ("win81", {}),
    "win10-x86-bios": ("win10-x86", {"vm": {"firmware": "bios"}}),
    "win7-bios": ("win7", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_answer_files(case: str) -> None:
    kind, windows = CASES[case]
    text = render(kind, **dict(windows))
    assert_golden(f"answer-{case}.xml", text)
    assert text.isascii()
    report = validate_bytes(text.encode(), case, inspection(kind))
    assert report.findings == [], [str(f) for f in report.findings]
    assert PASSWORD not in text


def _xpath(text: str, path: str) -> list[str]:
    root = etree.fromstring(text.encode())
    return [e.text or "" for e in root.xpath(path, namespaces=NS)]


def test_edition_choice_and_keys() -> None:
    text = render("win11-24h2")
    assert _xpath(text, "//u:MetaData/u:Value") == ["5"]  # Pro by default, by index
    assert _xpath(text, "//u:ProductKey/u:Key") == ["VK7JG-NPHTM-C97JM-9MPGT-3V66T"]
    home = render("win11-24h2", edition="windows 11 home")
    assert _xpath(home, "//u:ProductKey/u:Key") == ["YTMG3-N6DKC-DKB77-7M9GH-8HVX7"]
    server = render("server2022")
    assert _xpath(server, "//u:MetaData/u:Key") == ["/IMAGE/NAME"]
    assert _xpath(server, "//u:MetaData/u:Value") == ["Windows Server 2022 Datacenter (Desktop Experience)"]
    assert _xpath(server, "//u:ProductKey/u:Key") == ["WX4NM-KYWYW-QJJR4-XV3QB-6VM33"]
    own = render("win10", product_key="abcde-12345-ABCDE-12345-ABCDE")
    assert _xpath(own, "//u:ProductKey/u:Key") == ["ABCDE-12345-ABCDE-12345-ABCDE"]


def test_hardware_bypass_follows_the_plan() -> None:
    lab = "//u:RunSynchronousCommand/u:Path[contains(., 'LabConfig')]"
    assert _xpath(render("win11-24h2"), lab) == []  # UEFI + secure boot + TPM: no bypass
    assert len(_xpath(render("win11-24h2", vm={"tpm": "off"}), lab)) == 5
    assert len(_xpath(render("win11-24h2", vm={"firmware": "uefi"}), lab)) == 5
    assert _xpath(render("win11-24h2", vm={"tpm": "off"}, hardware_bypass="off"), lab) == []
    assert len(_xpath(render("win11-24h2", hardware_bypass="on"), lab)) == 5
    assert _xpath(render("win10", hardware_bypass="on"), lab) == []  # Windows 10 has no such checks


def test_windows11_minimums() -> None:
    with pytest.raises(SpecError, match=r"disk\.size = 32GiB \(needs 64GiB\); vm\.memory = 2GiB"):
        render("win11-24h2", vm={"memory": "2GiB"}, disk={"size": "32GiB"})
    # An explicit bypass lets a small VM through (Setup's checks are bypassed too).
    text = render("win11-24h2", vm={"memory": "2GiB", "vcpus": 1}, hardware_bypass="on")
    assert "BypassRAMCheck" in text


def test_passwords_are_obfuscated_like_setup_expects() -> None:
    # rgl's file stores 'vagrant' this way (a real, working answer file).
    assert obfuscate_password("vagrant", "Password") == "dgBhAGcAcgBhAG4AdABQAGEAcwBzAHcAbwByAGQA"
    text = render("win10")
    values = _xpath(text, "//u:LocalAccount/u:Password/u:Value")
    assert base64.b64decode(values[0]).decode("utf-16-le") == PASSWORD + "Password"


def test_phase_markers_and_bootstrap_command() -> None:
    text = render("win11-23h2")
    pe = _xpath(text, "//u:settings[@pass='windowsPE']//u:RunSynchronousCommand/u:Path")
    assert pe[0] == "cmd.exe /c >COM1 echo VMFORGE-PHASE pe-start"
    spec = _xpath(text, "//u:settings[@pass='specialize']//u:RunSynchronousCommand/u:Path")
    assert spec[0] == "cmd.exe /c >COM1 echo VMFORGE-PHASE specialize"
    first = _xpath(text, "//u:FirstLogonCommands/u:SynchronousCommand/u:CommandLine")
    assert first[0] == "cmd.exe /c >COM1 echo VMFORGE-PHASE firstlogon"
    assert "vmforge\\bootstrap.ps1" in first[1]
    assert _xpath(text, "//u:AutoLogon/u:LogonCount") == ["1"]


@pytest.mark.parametrize(
    ("windows", "error", "message"),
    [
        ({"edition": "Windows 11 Ultimate"}, SpecError, r"not in win11-24h2\.iso \(it holds 1: Windows 11 Home; 5: "),
        ({"edition": 3}, SpecError, "is not in"),
        ({"product_key": "YTMG3-N6DKC-DKB77-7M9GH-8HVX7"}, SpecError, "generic key of Core"),
        ({"product_key": "not-a-key"}, SpecError, "is not a product key"),
        ({"password": "pässword-1"}, SpecError, r"windows\.password has non-ASCII"),
        ({"admin_user": "jürgen"}, SpecError, r"windows\.admin_user has non-ASCII"),
        ({"admin_user": "a/b"}, SpecError, "not a valid Windows user name"),
    ],
)
def test_bad_input_is_a_one_line_error(windows: dict[str, Any], error: type[VmforgeError], message: str) -> None:
    password = windows.pop("password", PASSWORD)
    spec = spec_for(**windows)
    iso = inspection("win11-24h2")
    plan = resolve_plan(spec, media=iso.media_facts())
    with pytest.raises(error, match=message) as info:
        render_answer(spec.windows, plan, iso, password)
    assert "\n" not in info.value.message and info.value.hint
    assert password not in info.value.message
