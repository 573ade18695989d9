"""When a recorded package is reinstalled: same digest, newer DriverVer, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packages_support import write_idd_package
from vmforge.packages.catalog import resolve_argument
from vmforge.packages.install import decide_action
from vmforge.packages.manifest import PackageError
from vmforge.packages.preflight import CheckedPackage, Target, check_package
from vmforge.spec import parse_spec

WIN = Target("windows", "amd64", "Enterprise", 26100)


def checked(folder: Path, **kwargs: object) -> CheckedPackage:
    package = resolve_argument(str(write_idd_package(folder, **kwargs)))  # type: ignore[arg-type]
    return check_package(package, parse_spec({}, label="t"), WIN)


def record_of(item: CheckedPackage, status: str = "installed") -> dict[str, object]:
    return {"status": status, "digest": item.digest(), "driver_ver": item.driver_ver.text if item.driver_ver else None}


def test_upgrade_rules(tmp_path: Path) -> None:
    v1 = checked(tmp_path / "v1", driver_ver="03/14/2025,1.2.0.0")
    assert decide_action(v1, None) == "installed"
    assert decide_action(v1, record_of(v1)) == "check"  # same digest: verification decides
    assert decide_action(v1, record_of(v1, "failed")) == "installed"  # a failed run is redone
    newer = checked(tmp_path / "v2", driver_ver="03/14/2025,1.2.0.1", dll=b"MZ test idd v2")
    assert decide_action(newer, record_of(v1)) == "upgraded"
    same_ver = checked(tmp_path / "v3", driver_ver="03/14/2025,1.2.0.0", dll=b"MZ rebuilt")
    with pytest.raises(PackageError, match=r"DriverVer 03/14/2025,1\.2\.0\.0 is not newer than the installed"):
        decide_action(same_ver, record_of(v1))
    older = checked(tmp_path / "v0", driver_ver="01/01/2025,1.3.0.0", dll=b"MZ old")
    with pytest.raises(PackageError, match=r"DriverVer 01/01/2025,1\.3\.0\.0 is not newer"):
        decide_action(older, record_of(v1))
