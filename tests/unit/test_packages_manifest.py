"""package.toml validation and preflight: every error is one line with a hint, before any copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from lxml import etree

from tests.packages_support import write_idd_package
from vmforge.packages.catalog import builtin_names, check_files, find_package, resolve_argument
from vmforge.packages.manifest import PackageError, load_manifest
from vmforge.packages.preflight import (
    SPECIALIZED_DISPLAY_EDITIONS,
    Target,
    check_package,
    render_configs,
)
from vmforge.spec import Spec, parse_spec

WIN = Target("windows", "amd64", "Professional", 26100)


def spec(**display: object) -> Spec:
    return parse_spec({"display": display} if display else {}, label="test")


def manifest_error(folder: Path, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.toml").write_text(text)
    with pytest.raises(PackageError) as info:
        load_manifest(folder)
    message = info.value.message
    assert "\n" not in message and info.value.hint
    assert info.value.exit_code == 2
    return message


BASE_APP = 'name = "a"\nkind = "app"\nversion = "1"\n[app]\ninstall = ["x"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('kind = "app"\nversion = "1"\n[app]\ninstall = ["x"]\n', "'name' is required"),
        ('name = "a"\nversion = "1"\n', "'kind' is required"),
        ('name = "a"\nkind = "app"\n[app]\ninstall = ["x"]\n', "'version' is required"),
        ('name = "a"\nkind = "firmware"\nversion = "1"\n', "kind = 'firmware': unknown kind, use 'driver' or 'app'"),
        (BASE_APP + 'colour = "red"\n', "unknown key 'app.colour'"),
        ('name = "a"\nkind = "driver"\nversion = "1"\n', "kind = 'driver' needs a [driver] table"),
        ('name = "a"\nkind = "app"\nversion = "1"\n', "kind = 'app' needs an [app] table"),
        ('name = "a"\nkind = "app"\nversion = "1"\n[app]\ninstall = []\n', "app.install = []: an app needs at least"),
        (
            'name = "a"\nkind = "driver"\nversion = "1"\n[driver]\ninf = "x.inf"\n',
            "driver.inf = 'x.inf' is not listed in [[files]]",
        ),
        (
            'name = "a"\nkind = "driver"\nversion = "1"\n[driver]\ninf = "x.inf"\ncertificate = "c.cer"\n'
            '[[files]]\npath = "x.inf"\n',
            "driver.certificate = 'c.cer' is not listed in [[files]]",
        ),
        (
            'name = "a"\nkind = "driver"\nversion = "1"\n[driver]\ninf = "x.inf"\nroot_device = true\n'
            '[[files]]\npath = "x.inf"\n',
            "driver.root_device = true needs driver.hardware_id",
        ),
        (BASE_APP + '[[files]]\npath = "../etc/passwd"\n', "files[0].path = '../etc/passwd': must be a path inside"),
        (BASE_APP + '[[files]]\npath = "a"\nsha256 = "abc"\n', "files[0].sha256 = 'abc': a sha256 is 64"),
        (BASE_APP + '[[files]]\npath = "a"\n[[files]]\npath = "a"\n', "files listed twice: a"),
        (BASE_APP + '[[config]]\ntemplate = "t"\ndestination = "rel\\\\x"\n', "must be an absolute guest path"),
        ('name = "Bad Name"\nkind = "app"\nversion = "1"\n[app]\ninstall = ["x"]\n', "a package name is lower-case"),
        ('name = "a"\nkind = \n', "TOML syntax error"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in manifest_error(tmp_path / "p", text)


def test_no_manifest_and_unknown_package(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"holds no package\.toml"):
        load_manifest(tmp_path)
    with pytest.raises(PackageError, match="no package 'nope'"):
        find_package("nope")


def test_builtin_descriptors_load_and_name_their_files() -> None:
    names = builtin_names()
    assert names == ["compositor", "mttvdd", "virtio-ivshmem", "virtio-win-guest-tools"]
    for name in names:
        package = find_package(name)
        assert package.manifest.user_supplied
        # User-supplied binaries are looked for under $STATE/packages/<name>/, never in vmforge.
        assert package.files_dir.parts[-2:] == ("packages", name)
        assert all(c.status == "missing" for c in check_files(package))
    assert set(find_package("compositor").manifest.editions) == set(SPECIALIZED_DISPLAY_EDITIONS)


def test_mttvdd_settings_rendered_from_the_display_section() -> None:
    package = find_package("mttvdd")
    configs = render_configs(
        package, spec(idd_monitors=2, idd_resolutions=["2560x1440", "3840x2160"], refresh_rates=[60, 144])
    )
    xml = configs["C:\\VirtualDisplayDriver\\vdd_settings.xml"]
    root = etree.fromstring(xml)
    assert root.findtext("monitors/count") == "2"
    assert [r.text for r in root.findall("global/g_refresh_rate")] == ["60", "144"]
    modes = [(r.findtext("width"), r.findtext("height")) for r in root.findall("resolutions/resolution")]
    assert modes == [("2560", "1440"), ("3840", "2160")]
    default = etree.fromstring(render_configs(package, spec())["C:\\VirtualDisplayDriver\\vdd_settings.xml"])
    assert [(r.findtext("width"), r.findtext("height")) for r in default.findall("resolutions/resolution")] == [
        ("1920", "1080")
    ]


def test_user_files_in_state_packages_dir(tmp_path: Path) -> None:
    # The state dir is the test's own (conftest); files dropped there make the package complete.
    package = find_package("virtio-ivshmem")
    package.files_dir.mkdir(parents=True)
    for name in ("ivshmem.inf", "ivshmem.cat", "ivshmem.sys"):
        (package.files_dir / name).write_bytes(b"x")
    assert [c.status for c in check_files(find_package("virtio-ivshmem"))] == ["ok", "ok", "ok"]


def test_a_good_driver_package_passes_preflight(tmp_path: Path) -> None:
    package = resolve_argument(str(write_idd_package(tmp_path / "idd")))
    checked = check_package(package, spec(), WIN)
    assert checked.inf is not None and checked.inf.stamped
    assert checked.certificate is not None and len(checked.certificate.thumbprint) == 40
    assert checked.certificate.subject == "CN=vmforge test driver signer"
    assert checked.warnings == ()
    assert list(checked.configs) == ["C:\\VirtualDisplayDriver\\vdd_settings.xml"]
    assert checked.digest() == check_package(package, spec(), WIN).digest()
    assert checked.digest() != check_package(package, spec(idd_monitors=3), WIN).digest()


def preflight_error(package_dir: Path, target: Target = WIN) -> str:
    with pytest.raises(PackageError) as info:
        check_package(resolve_argument(str(package_dir)), spec(), target)
    assert "\n" not in info.value.message and info.value.hint
    return info.value.message


def replace_in_inf(folder: Path, old: str, new: str) -> None:
    inf = folder / "TestIdd.inf"
    text = inf.read_bytes()[2:].decode("utf-16-le").replace(old, new)
    inf.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))


def test_preflight_file_missing_and_sha_mismatch(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd")
    (folder / "TestIdd.dll").write_bytes(b"tampered")
    message = preflight_error(folder)
    assert message.startswith("testidd: TestIdd.dll: sha256 ")
    assert "does not match the manifest's" in message
    (folder / "TestIdd.cat").unlink()
    assert preflight_error(folder) == (
        f"testidd: TestIdd.cat: missing (expected at {folder / 'TestIdd.cat'}) (and 1 more)"
    )


def test_preflight_inf_problems(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd", pin_hashes=False)
    assert "has no models for x86 (it has amd64, arm64)" in preflight_error(
        folder, Target("windows", "x86", "Pro", 26100)
    )
    replace_in_inf(folder, "Class       = Display", "Class       = System")
    assert "is class 'System', the package expects 'Display'" in preflight_error(folder)
    replace_in_inf(folder, "Class       = System", "Class       = Display")
    replace_in_inf(folder, "Root\\TestIdd", "Root\\Other")
    assert "does not install hardware id 'Root\\TestIdd' on amd64 (it installs Root\\Other)" in preflight_error(folder)
    replace_in_inf(folder, "Root\\Other", "Root\\TestIdd")
    replace_in_inf(folder, "TestIdd.dll = 1", "TestIdd.dll = 1\nExtra.sys = 1")
    assert "references Extra.sys, which the package does not list" in preflight_error(folder)


def test_preflight_unstamped_inf_warns_and_empty_driver_ver_refused(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd", pin_hashes=False, driver_ver="0.1")
    replace_in_inf(folder, "NTamd64.10.0...19041", "NT$ARCH$")
    checked = check_package(resolve_argument(str(folder)), spec(), WIN)
    assert checked.warnings == (
        "testidd: TestIdd.inf is an unstamped source INF: DriverVer '0.1' is not 'mm/dd/yyyy,version'; "
        "models are decorated NT$ARCH$",
    )
    folder = write_idd_package(tmp_path / "idd2", pin_hashes=False, driver_ver="")
    assert "DriverVer is empty (an unstamped source INF)" in preflight_error(folder)


def test_preflight_unreadable_certificate(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd", pin_hashes=False)
    (folder / "TestIdd.cer").write_bytes(b"not a certificate")
    assert preflight_error(folder) == "testidd: certificate TestIdd.cer is not an X.509 certificate (DER or PEM)"


def compositor_like(tmp_path: Path) -> Path:
    folder = tmp_path / "comp"
    folder.mkdir()
    (folder / "compositor.msi").write_bytes(b"msi")
    editions = ", ".join(f'"{e}"' for e in SPECIALIZED_DISPLAY_EDITIONS)
    (folder / "package.toml").write_text(
        f'name = "comp"\nkind = "app"\nversion = "1"\nmin_windows = 19041\neditions = [{editions}]\n'
        '[app]\ninstall = ["x"]\nservices = ["S"]\n[[files]]\npath = "compositor.msi"\n'
    )
    return folder


def test_preflight_edition_build_os_and_arch(tmp_path: Path) -> None:
    folder = compositor_like(tmp_path)
    assert preflight_error(folder, Target("windows", "amd64", "Professional", 26100)) == (
        "comp: edition 'Professional' cannot run it; it needs Enterprise, EnterpriseN, EnterpriseS, "
        "EnterpriseSN, ProfessionalWorkstation, ProfessionalWorkstationN, IoTEnterprise, IoTEnterpriseS"
    )
    assert "the guest's edition is unknown" in preflight_error(folder, Target("windows", "amd64", None, 26100))
    assert "needs Windows build 19041 or newer, the guest is build 18363" in preflight_error(
        folder, Target("windows", "amd64", "Enterprise", 18363)
    )
    assert "package for windows guests, not linux" in preflight_error(folder, Target("linux", "amd64"))
    assert "built for amd64, the guest is arm64" in preflight_error(folder, Target("windows", "arm64", "Enterprise"))
    for edition in ("Enterprise", "ProfessionalWorkstation", "IoTEnterprise"):
        check_package(resolve_argument(str(folder)), spec(), Target("windows", "amd64", edition, 26100))


def test_config_template_problems(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd", pin_hashes=False)
    (folder / "settings.xml.j2").write_text("{{ display.no_such_value }}")
    assert "'dict object' has no attribute 'no_such_value'" in preflight_error(folder)
    (folder / "settings.xml.j2").unlink()
    assert "config template settings.xml.j2 is missing" in preflight_error(folder)


def test_name_mismatch_between_spec_and_manifest(tmp_path: Path) -> None:
    folder = write_idd_package(tmp_path / "idd")
    with pytest.raises(PackageError, match="name = 'testidd' but the package is asked for as 'other'"):
        find_package("other", folder)
    digest = hashlib.sha256((folder / "TestIdd.dll").read_bytes()).hexdigest()
    assert check_files(find_package("testidd", folder))[2].sha256 == digest
