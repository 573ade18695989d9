"""Golden probe image -> cache hit -> two linked clones -> drift check -> reprovision -> prune,
on the real daemon with the real probe guest.

``build_image`` runs the real create pipeline (os = "probe"), writes known content and an
identity file, generalizes through the agent (identity removed), waits for the power-off and
stores the disk + TPM state.  Building again is a cache hit that boots nothing.  Each clone must
see the base content, get its own identity, and leave the base byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from images_support import POOL, PREFIX, SYSTEM_URI, disk_content_sha, img_pool_dir  # noqa: F401 - fixture
from probe_vm import MACHINE_CACHE, probe_image  # noqa: F401 - fixture

from tests.conftest import REPO, Result
from vmforge.cli.image_cmd import vm_plan
from vmforge.errors import UsageError
from vmforge.images.build import GOLDEN_FILE, build_image
from vmforge.images.capture import capture_image
from vmforge.images.clone import agent_session
from vmforge.images.files import state_digest
from vmforge.images.generalize import PROBE_IDENTITY
from vmforge.images.reprovision import choose_source, reprovision
from vmforge.images.specialize import read_probe_file
from vmforge.images.store import list_images, prune_images, remove_image, tpm_copy
from vmforge.images.vmfiles import vm_files
from vmforge.ownership import lookup_owned_domain
from vmforge.probe.image import ProbeImage
from vmforge.spec import Overrides, load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration

GOLDEN = PREFIX + "golden"
CLONES = (PREFIX + "c1", PREFIX + "c2")
READY = 420.0  # boot to agent under TCG on a busy shared 2-core host


def write_spec(path: Path, pool_dir: Path) -> Path:
    path.write_text(
        f"""os = "probe"
[vm]
name = "{GOLDEN}"
virt_type = "qemu"
memory = "256MiB"
vcpus = 1
firmware = "bios"
tpm = "on"
[disk]
size = "64MiB"
pool = "{POOL}"
pool_dir = "{pool_dir}"
[network]
type = "none"
[display]
vnc = false
[ivshmem]
enabled = false
[timeouts]
boot = "{READY:.0f}s"
agent = "{READY:.0f}s"
""",
        encoding="utf-8",
    )
    return path


def cli(*args: str, timeout: float = 900) -> Result:
    """The real CLI in a subprocess, sharing the machine's probe-image cache."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(MACHINE_CACHE)}
    proc = subprocess.run(
        [sys.executable, "-m", "vmforge", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_cache_clone_drift_reprovision_prune(
    system_conn: Any,
    img_pool_dir: Path,  # noqa: F811
    probe_image: ProbeImage,  # noqa: F811 - built once per machine, before the clones need it
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(MACHINE_CACHE))  # the create pipeline finds the probe image
    spec_file = write_spec(tmp_path / "golden.toml", img_pool_dir)
    spec, _ = load_spec(spec_file)
    built = build_image(system_conn, spec, reporter=Reporter())
    image = built.image
    assert not built.cache_hit and built.boots == 1 and image.generalized and image.tpm and image.os == "linux"
    base = Path(image.key)
    assert base.stat().st_mode & 0o777 == 0o444 and sha(base) == image.disk_sha256
    assert lookup_owned_domain(system_conn, GOLDEN) is None and not VmDir(GOLDEN).root.exists()  # build VM gone
    with pytest.raises(UsageError, match="no vmforge VM named"):
        capture_image(system_conn, GOLDEN)

    again = cli("image", "build", "--spec", str(spec_file), "--json")
    assert again.code == 0, again.stderr
    hit = again.json()
    assert hit["cache_hit"] and hit["boots"] == 0 and hit["image"]["id"] == image.id
    assert hit["seconds"] < 5, hit  # ~1 s on an idle machine
    listed = cli("image", "list", "--json").json()["images"]
    assert [i["id"] for i in listed] == [image.id]

    identities = []
    image_tpm = state_digest(tpm_copy(image))
    for name in CLONES:
        made = cli("clone", image.id[:12], name, "--spec", str(spec_file), "--json")
        assert made.code == 0, made.stderr
        report = made.json()
        assert report["base_unchanged"] and report["identity"]
        guest = agent_session(SYSTEM_URI, name)()
        assert "vmforge golden probe image" in (read_probe_file(guest, GOLDEN_FILE) or "")  # the base's content
        assert (read_probe_file(guest, PROBE_IDENTITY) or "").startswith(f"name={name}\n")  # its own identity
        identities.append(report["identity"])
        files = vm_files(system_conn.lookupByName(name))
        assert files.tpm_dir is not None and files.tpm_dir.is_dir()  # its own (running swtpm writes it)
    assert state_digest(tpm_copy(image)) == image_tpm  # the image's copy is never written
    assert len(set(identities)) == len(CLONES)
    assert sha(base) == image.disk_sha256  # never modified by either clone

    first = CLONES[0]
    clean = cli("reprovision", first, "--check", "--spec", str(spec_file), "--json")
    assert clean.code == 0, clean.stderr
    assert "domain definition" in clean.json()["checked"]
    drifted = cli("reprovision", first, "--check", "--spec", str(spec_file), "--set", "vm.memory=320MiB", "--json")
    assert drifted.code == 3, drifted.stderr
    assert any("domain memory" in d for d in drifted.json()["error"]["report"]["drift"])

    # Deliberate damage: the golden file deleted in the running clone; reprovision re-clones it.
    guest = agent_session(SYSTEM_URI, first)()
    assert guest.run_script(f"rm {GOLDEN_FILE} && sync", timeout=60).rc == 0
    system_conn.lookupByName(first).destroy()
    overlay = img_pool_dir / f"{first}.qcow2"
    assert disk_content_sha(overlay, tmp_path) != disk_content_sha(base, tmp_path)
    with pytest.raises(UsageError, match="has no known-good snapshot"):
        choose_source(VmDir(first), "snapshot")
    assert choose_source(VmDir(first), None) == "image"
    clone_spec, _ = load_spec(spec_file, Overrides((), {"vm.name": first}))
    plan = vm_plan(system_conn, clone_spec)
    result = reprovision(system_conn, first, plan, VmDir(first), source=None, reporter=Reporter(), guest=None)
    assert result["from"] == "image" and result["image"] == image.id
    assert disk_content_sha(overlay, tmp_path) == disk_content_sha(base, tmp_path)  # the file is back

    with pytest.raises(UsageError, match="is in use by volume"):
        remove_image(system_conn, image)
    removed, kept = prune_images(system_conn)
    assert removed == [] and len(kept) == 1
    for name in CLONES:
        assert cli("destroy", name, "--connect", SYSTEM_URI).code == 0
    assert sha(base) == image.disk_sha256
    pruned = cli("image", "prune", "--connect", SYSTEM_URI, "--json").json()
    assert pruned["kept"] == [] and any(GOLDEN in item for item in pruned["removed"])
    assert not base.exists() and list_images() == []
