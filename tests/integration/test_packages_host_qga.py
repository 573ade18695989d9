"""The package install flow end to end over the real agent transport, Linux adapter.

Debian's qemu-ga runs on the host in unix-listen mode (the fixture of test_agent_host_qga.py):
everything it "installs" lands in the test's folder, so every byte and every run can be checked.
Real here: the agent protocol, copies into the guest proven by the guest's sha256sum, config
placement, install/verify commands, idempotence, upgrades, failure bookkeeping in state.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_agent_host_qga import HostAgent, transport_for
from tests.packages_support import write_idd_package, write_shell_app
from vmforge.guest.session import Guest
from vmforge.packages.catalog import Package, resolve_argument
from vmforge.packages.install import PackageInstallFailed, install_packages
from vmforge.packages.manifest import PackageError
from vmforge.plan import Plan, resolve_plan
from vmforge.spec import Spec, parse_spec
from vmforge.state import VmDir

pytestmark = pytest.mark.integration
VM = "vmft-pkg-host"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[HostAgent]:
    host = HostAgent(tmp_path)
    host.start()
    try:
        yield host
    finally:
        host.kill()


class Rig:
    def __init__(self, agent: HostAgent, root: Path) -> None:
        self.guest = Guest(transport_for(agent))
        self.root = root  # the "guest's" folder for this test
        self.stage = root / "stage"
        self.spec: Spec = parse_spec(
            {
                "os": "probe",
                "vm": {"name": VM},
                "display": {
                    "idd_monitors": 2,
                    "idd_resolutions": ["2560x1440", "1920x1080"],
                    "refresh_rates": [60, 120],
                },
            },
            label="test",
        )
        self.plan: Plan = resolve_plan(self.spec)
        self.vm_dir = VmDir(VM)

    def install(self, *packages: Package) -> object:
        return install_packages(
            self.spec, self.plan, self.vm_dir, self.guest, packages=list(packages), stage_root=str(self.stage)
        )

    def record(self, name: str) -> dict[str, object]:
        data = json.loads(self.vm_dir.state_file.read_text())
        record = data["extra"]["packages"][name]
        assert isinstance(record, dict)
        return record

    def runs(self) -> int:
        path = self.root / "install-runs"
        return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def rig(agent: HostAgent, tmp_path: Path) -> Rig:
    root = tmp_path / "guest"
    root.mkdir()
    return Rig(agent, root)


def app(rig: Rig, folder: str = "pkg", **kwargs: object) -> Package:
    return resolve_argument(str(write_shell_app(rig.root.parent / folder, rig.root, **kwargs)))  # type: ignore[arg-type]


def test_install_then_already_installed_then_upgrade(rig: Rig) -> None:
    package = app(rig)
    report = rig.install(package)
    outcome = report.outcomes[0]  # type: ignore[attr-defined]
    assert outcome.action == "installed"
    staged = rig.stage / "shellapp"
    assert outcome.changed == [
        f"copied bin/payload.bin to {staged}/bin/payload.bin (sha256 verified in the guest)",
        f"copied big.bin to {staged}/big.bin (sha256 verified in the guest)",
        f"placed config {rig.root}/etc/app.conf (sha256 verified in the guest)",
        # The manifest's command as written ({stage} is the staging folder, quoted for the shell).
        f"ran mkdir -p {rig.root}/installed && cp {{stage}}/bin/payload.bin {rig.root}/installed/payload.bin "
        f"&& echo run >> {rig.root}/install-runs",
    ]
    assert (rig.root / "installed" / "payload.bin").read_bytes() == b"payload v1\n"
    assert (staged / "big.bin").read_bytes() == (package.files_dir / "big.bin").read_bytes()
    assert (rig.root / "etc" / "app.conf").read_text() == "monitors=2\nmode=2560x1440\nmode=1920x1080\nrates=60,120\n"
    record = rig.record("shellapp")
    assert record["status"] == "installed" and record["version"] == "1"
    assert rig.runs() == 1

    before = rig.vm_dir.state_file.read_bytes()
    again = rig.install(package).outcomes[0]  # type: ignore[attr-defined]
    assert (again.action, again.changed) == ("already installed", [])
    assert rig.runs() == 1
    assert rig.vm_dir.state_file.read_bytes() == before

    upgraded = rig.install(app(rig, "pkg2", version="2", payload=b"payload v2\n")).outcomes[0]  # type: ignore[attr-defined]
    assert upgraded.action == "upgraded"
    assert [c.split(" to ")[0] for c in upgraded.changed[:2]] == ["copied bin/payload.bin", "copied big.bin"]
    assert not any("app.conf" in c for c in upgraded.changed)  # same display settings: config untouched
    assert (rig.root / "installed" / "payload.bin").read_bytes() == b"payload v2\n"
    assert rig.record("shellapp")["version"] == "2"
    assert rig.runs() == 2


def test_a_broken_install_is_repaired_without_copying_again(rig: Rig) -> None:
    package = app(rig)
    rig.install(package)
    (rig.root / "installed" / "payload.bin").write_bytes(b"damaged by a user")
    outcome = rig.install(package).outcomes[0]  # type: ignore[attr-defined]
    assert outcome.action == "repaired"
    assert [c.split(" ")[0] for c in outcome.changed] == ["ran"]  # staged files verified in place
    assert (rig.root / "installed" / "payload.bin").read_bytes() == b"payload v1\n"


def test_a_damaged_staged_file_is_copied_again(rig: Rig) -> None:
    package = app(rig)
    (rig.stage / "shellapp" / "bin").mkdir(parents=True)
    (rig.stage / "shellapp" / "bin" / "payload.bin").write_bytes(b"stale")
    (rig.stage / "shellapp").joinpath("big.bin").write_bytes((package.files_dir / "big.bin").read_bytes())
    outcome = rig.install(package).outcomes[0]  # type: ignore[attr-defined]
    copied = [c for c in outcome.changed if c.startswith("copied")]
    assert copied == [f"copied bin/payload.bin to {rig.stage}/shellapp/bin/payload.bin (sha256 verified in the guest)"]


def test_failure_reports_exactly_what_changed_and_the_next_run_continues(rig: Rig) -> None:
    failing = app(rig, install_exit=7)
    with pytest.raises(PackageInstallFailed) as info:
        rig.install(failing)
    error = info.value
    assert error.step.startswith("run mkdir -p")
    assert "exited 7 in the guest" in error.message
    assert error.changed == [
        f"copied bin/payload.bin to {rig.stage}/shellapp/bin/payload.bin (sha256 verified in the guest)",
        f"copied big.bin to {rig.stage}/shellapp/big.bin (sha256 verified in the guest)",
        f"placed config {rig.root}/etc/app.conf (sha256 verified in the guest)",
    ]
    assert "changed before the failure: copied bin/payload.bin" in error.message
    assert error.to_json()["failed_step"] == error.step
    record = rig.record("shellapp")
    assert record["status"] == "failed" and record["changed"] == error.changed

    fixed = rig.install(app(rig, "fixed")).outcomes[0]  # type: ignore[attr-defined]
    assert fixed.action == "installed"
    assert [c.split(" ")[0] for c in fixed.changed] == ["ran"]  # nothing copied twice
    assert rig.record("shellapp")["status"] == "installed"


def test_preflight_refuses_before_anything_is_copied(rig: Rig) -> None:
    good = app(rig)
    bad = app(rig, "bad", name="badapp")
    (bad.files_dir / "big.bin").unlink()
    with pytest.raises(PackageError, match=r"badapp: big.bin: missing"):
        rig.install(good, bad)  # the good one comes first, and still nothing was copied
    assert not rig.stage.exists()
    assert not rig.vm_dir.state_file.exists()
    driver = resolve_argument(str(write_idd_package(rig.root.parent / "idd")))
    with pytest.raises(PackageError, match="a driver package for windows guests, not linux"):
        rig.install(driver)
    assert not rig.stage.exists()


def test_verification_failure_after_install_is_reported(rig: Rig) -> None:
    package = app(rig)
    # Make the verify command fail: the installed copy is changed by a second "installer" step.
    toml = package.descriptor_dir / "package.toml"
    toml.write_text(
        toml.read_text().replace("echo run >> ", f"echo broken > {rig.root}/installed/payload.bin && echo run >> ")
    )
    with pytest.raises(PackageInstallFailed, match=r"verify: check cmp .* exited 1 in the guest"):
        rig.install(resolve_argument(str(package.descriptor_dir)))
    assert rig.record("shellapp")["status"] == "failed"


def test_copies_staged_from_the_answer_media_are_used_and_a_bad_one_is_replaced(rig: Rig, tmp_path: Path) -> None:
    """The answer media's packages folder, staged the way stage-packages.ps1 does it (every
    file checked against SHA256SUMS), is what the packages step then finds and keeps."""
    import subprocess

    from vmforge.media.answer_iso import write_answer_iso
    from vmforge.media.package_media import MEDIA_PACKAGES_DIR, package_media_files
    from vmforge.packages.preflight import Target, check_package

    package = app(rig)
    iso = tmp_path / "answer.iso"
    write_answer_iso(iso, package_media_files([check_package(package, rig.spec, Target("linux", "amd64"))]))
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", f"/{MEDIA_PACKAGES_DIR}", str(rig.stage)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    sums = subprocess.run(
        ["sha256sum", "--check", "SHA256SUMS"], check=False, cwd=rig.stage, capture_output=True, timeout=60
    )
    assert sums.returncode == 0, sums.stdout
    for path in (rig.stage / "shellapp").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # xorriso keeps the media's read-only modes

    outcome = rig.install(package).outcomes[0]  # type: ignore[attr-defined]
    assert outcome.action == "installed"
    assert sorted(outcome.already_staged) == ["big.bin", "bin/payload.bin"]
    assert not any(c.startswith("copied") for c in outcome.changed)
    assert (rig.root / "installed" / "payload.bin").read_bytes() == b"payload v1\n"

    # A staged copy whose hash no longer matches is replaced over the agent (the fallback).
    (rig.stage / "shellapp" / "big.bin").write_bytes(b"damaged")
    (rig.root / "installed" / "payload.bin").unlink()
    again = rig.install(package).outcomes[0]  # type: ignore[attr-defined]
    assert again.action == "repaired" and again.already_staged == ["bin/payload.bin"]
    assert [c.split(" to ")[0] for c in again.changed if c.startswith("copied")] == ["copied big.bin"]
    assert (rig.stage / "shellapp" / "big.bin").read_bytes() == (package.files_dir / "big.bin").read_bytes()
