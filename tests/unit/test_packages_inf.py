"""vmforge's INF reader on the real peer INFs and on hand-written edge cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from vmforge.packages.inf import DriverVer, InfError, guest_arch, parse_driver_ver, parse_inf_text, read_inf

DISPLAY_GUID = "{4D36E968-E325-11CE-BFC1-08002BE10318}"


def inf(text: str) -> object:
    return parse_inf_text(text, Path("t.inf"))


def test_mttvdd_source_inf(peers: Path) -> None:
    parsed = read_inf(peers / "driver-inf" / "MttVDD.inf")
    assert parsed.encoding == "utf-16-le-bom"
    assert (parsed.device_class, parsed.class_guid) == ("Display", DISPLAY_GUID)
    assert parsed.provider == "MikeTheTech"  # %ManufacturerName% substituted, trailing comment dropped
    assert parsed.catalog_file == "MttVDD.cat"
    assert parsed.driver_ver_raw == "" and parsed.driver_ver is None  # "DriverVer= ; TODO ..."
    assert not parsed.stamped
    assert parsed.stamp_problems() == ["DriverVer is empty", "models are decorated NT$ARCH$"]
    assert parsed.architectures == ("$ARCH$",)
    assert parsed.hardware_ids("amd64") == ("Root\\MttVDD", "MttVDD")
    assert parsed.hardware_ids("arm64") == ("Root\\MttVDD", "MttVDD")
    assert parsed.installs("root\\mttvdd", "amd64")
    assert parsed.models[0].description == "Virtual Display Driver"
    assert parsed.models[0].install_section == "MyDevice_Install"
    assert parsed.source_files == ("MttVDD.dll",)
    assert parsed.problems == ()


def test_looking_glass_idd_source_inf(peers: Path) -> None:
    parsed = read_inf(peers / "driver-inf" / "LGIdd.inf")
    assert parsed.encoding == "utf-16-le-bom"
    assert parsed.device_class == "Display" and parsed.provider == "Looking Glass"
    assert parsed.driver_ver_raw == "0.1" and parsed.driver_ver is None
    assert parsed.stamp_problems()[0] == "DriverVer '0.1' is not 'mm/dd/yyyy,version'"
    assert parsed.hardware_ids("amd64") == ("Root\\LGIdd", "LGIdd")
    assert parsed.source_files == ("LGIdd.dll", "LGIddHelper.exe")
    # Quoted values keep their commas and semicolons: "D:P(A;;GA;;;SY)" is one value.
    security = [line for line in parsed.sections["lgidd_hardwaredevicesettings"] if "Security" in line.values]
    assert security[0].values[-1] == "D:P(A;;GA;;;SY)"


def test_looking_glass_input_ascii_inf_with_os_version_decoration(peers: Path) -> None:
    parsed = read_inf(peers / "driver-inf" / "LGInput.inf")
    assert parsed.encoding == "ascii"
    assert parsed.device_class == "HIDClass"
    assert parsed.models[0].section == "Standard.NT$ARCH$.10.0"
    assert parsed.models[0].target == "NT$ARCH$.10.0"
    assert parsed.hardware_ids("amd64") == ("Root\\LGInput",)
    assert parsed.problems == ()


MULTI = """
[Version]
Signature="$Windows NT$"
Class=System
ClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}
Provider=%Mfg%
CatalogFile.NTamd64=drv64.cat
DriverVer=07/04/2024,100.95.104.26600

[Manufacturer]
%Mfg%=Models,NTx86,NTamd64.10.0,NTarm64

[Models.NTx86]
%Dev%=Inst, PCI\\VEN_1AF4&DEV_1110&SUBSYS_11001AF4&REV_01

[Models.NTamd64.10.0]
%Dev%=Inst, PCI\\VEN_1AF4&DEV_1110&SUBSYS_11001AF4&REV_01, PCI\\VEN_1AF4&DEV_1110

[Models.NTarm64]
%Dev%=Inst, PCI\\VEN_1AF4&DEV_1110&SUBSYS_11001AF4&REV_01

[SourceDisksFiles]
drv.sys = 1,,
[SourceDisksFiles.amd64]
drv64.sys=1

[Strings]
Mfg = "Red Hat, Inc."
Dev = "IVSHMEM ""shared"" memory ; device"
"""


def test_several_architectures_and_compatible_ids() -> None:
    parsed = parse_inf_text(MULTI, Path("m.inf"))
    assert parsed.architectures == ("amd64", "arm64", "x86")
    assert parsed.stamped and parsed.driver_ver == DriverVer(date(2024, 7, 4), (100, 95, 104, 26600))
    assert parsed.catalog_file == "drv64.cat"
    amd64 = next(m for m in parsed.models if m.arch == "amd64")
    assert amd64.target == "NTamd64.10.0"
    assert amd64.compatible_ids == ("PCI\\VEN_1AF4&DEV_1110",)
    assert parsed.provider == "Red Hat, Inc."  # a quoted string with a comma stays one value
    assert amd64.description == 'IVSHMEM "shared" memory ; device'
    # A less specific PCI id matches the INF's more specific one at an '&' boundary only.
    assert parsed.installs("PCI\\VEN_1AF4&DEV_1110", "arm64")
    assert not parsed.installs("PCI\\VEN_1AF4&DEV_111", "arm64")
    assert not parsed.supports("ia64")
    assert parsed.source_files == ("drv.sys", "drv64.sys")


def test_strings_comments_continuations_and_case() -> None:
    text = (
        '[version]\r\nclass = %cls% ; comment\r\nprovider = "100%% sure"\r\n'
        "DriverVer = 1/2/2023 , 1.0\r\n[MANUFACTURER]\r\n%M%=Std\r\n[std]\r\n"
        "%D%=Inst, \\\r\n   Root\\Cont ; continued line\r\n[Std]\r\n%D%=Inst2,Root\\Second\r\n"
        '[strings]\r\ncls=Display\r\nM="Maker"\r\nD="Device"\r\n[Strings.0407]\r\nD="Gerät"\r\n'
        "[Install]\r\nServiceBinary=%12%\\x.dll\r\n"
    )
    parsed = parse_inf_text(text, Path("c.inf"))
    assert parsed.device_class == "Display"
    assert parsed.provider == "100% sure"
    assert parsed.driver_ver == DriverVer(date(2023, 1, 2), (1, 0))
    # Undecorated models apply to x86 only; repeated sections merge.
    assert parsed.hardware_ids("x86") == ("Root\\Cont", "Root\\Second")
    assert parsed.hardware_ids("amd64") == ()
    assert parsed.models[0].description == "Device"  # [Strings] wins over a localised one
    assert parsed.sections["install"][0].values == ("%12%\\x.dll",)  # dirids stay


def test_missing_sections_are_reported_not_fatal() -> None:
    parsed = parse_inf_text("[Version]\nClass=Display\n[Manufacturer]\n%M%=Gone,NTamd64\nstray\n", Path("x.inf"))
    assert parsed.models == ()
    # A bare name in [Manufacturer] is a models section too (the short form).
    assert parsed.problems == (
        "line 4: models section [Gone.NTamd64] is missing",
        "line 5: models section [stray] is missing",
    )
    parsed = parse_inf_text("orphan = 1\n[Version]\nClass=Display\n", Path("y.inf"))
    assert parsed.problems == ("line 1: text outside any section",)
    assert parsed.models == () and parsed.driver_ver is None and parsed.catalog_file is None
    parsed = parse_inf_text("[Manufacturer]\nM=S,NTmips\n", Path("z.inf"))
    assert parsed.problems == ("line 2: decoration 'NTmips' names no architecture",)


def test_encodings(tmp_path: Path) -> None:
    body = '[Version]\nClass=Display\nProvider="Zürich AG"\n'
    cases = {
        "le.inf": (b"\xff\xfe" + body.encode("utf-16-le"), "utf-16-le-bom"),
        "be.inf": (b"\xfe\xff" + body.encode("utf-16-be"), "utf-16-be-bom"),
        "u8bom.inf": (b"\xef\xbb\xbf" + body.encode(), "utf-8-bom"),
        "u8.inf": (body.encode(), "utf-8"),
        "ansi.inf": (body.encode("cp1252"), "ansi"),
    }
    for name, (raw, encoding) in cases.items():
        (tmp_path / name).write_bytes(raw)
        parsed = read_inf(tmp_path / name)
        assert (parsed.encoding, parsed.provider) == (encoding, "Zürich AG"), name
    (tmp_path / "nobom.inf").write_bytes(body.encode("utf-16-le"))
    with pytest.raises(InfError, match="UTF-16 without a byte-order mark"):
        read_inf(tmp_path / "nobom.inf")
    with pytest.raises(InfError, match="cannot read INF"):
        read_inf(tmp_path / "absent.inf")


def test_driver_ver_ordering_and_forms() -> None:
    old = parse_driver_ver("01/02/2024,1.0.0.0")
    new = parse_driver_ver("01/02/2024,1.0.0.1")
    later = parse_driver_ver("02/01/2024")
    assert old is not None and new is not None and later is not None
    assert old < new < later
    assert new.text == "01/02/2024,1.0.0.1"
    for bad in ("", "0.1", "13/40/2024,1.0", "2024-01-02"):
        assert parse_driver_ver(bad) is None


def test_guest_arch_names() -> None:
    assert guest_arch("x86_64") == "amd64"
    assert guest_arch("aarch64") == "arm64"
    assert guest_arch("riscv64") == "riscv64"
