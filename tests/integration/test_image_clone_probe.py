"""Golden probe image -> cache hit -> three linked clones at once -> drift check -> snapshot and
revert on the probe -> reprovision after deliberate damage (snapshot, then image) -> prune, on
the real daemon with the real probe guest.

``build_image`` runs the real create pipeline (os = "probe"), writes known content and an
identity file, generalizes through the agent (identity removed), waits for the power-off and
stores the disk + TPM state.  Building again is a cache hit that boots nothing.  Each clone must
see the base content, get its own identity, get the clone spec's package installed over its
agent, and leave the base byte-identical.  The damage: the base's file and the package's payload
deleted, the package's setting (the probe's stand-in for a guarded setting; guards themselves are
Windows-only and recorded as skipped) turned off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from images_support import (  # noqa: F401 - img_pool_dir is a fixture
    POOL,
    PREFIX,
    SYSTEM_URI,
    disk_content_sha,
    img_pool_dir,
    probe_vm_spec,
)
from probe_vm import MACHINE_CACHE, probe_image  # noqa: F401 - fixture

from tests.conftest import REPO, Result
from vmforge.errors import UsageError
from vmforge.guest.session import Guest
from vmforge.images.build import GOLDEN_FILE, build_image
from vmforge.images.capture import capture_image
from vmforge.images.clone import agent_session
from vmforge.images.files import state_digest
from vmforge.images.generalize import PROBE_IDENTITY
from vmforge.images.reapply import GUARDS_WINDOWS_ONLY
from vmforge.images.reprovision import choose_source
from vmforge.images.specialize import read_probe_file
from vmforge.images.store import list_images, prune_images, remove_image, tpm_copy
from vmforge.images.vmfiles import vm_files
from vmforge.ownership import lookup_owned_domain
from vmforge.probe.image import ProbeImage
from vmforge.spec import load_spec
from vmforge.state import VmDir
from vmforge.ui import Reporter

pytestmark = pytest.mark.integration

GOLDEN = PREFIX + "golden"
CLONES = (PREFIX + "c1", PREFIX + "c2", PREFIX + "c3")
APP_ROOT = "/mnt/disk/vmft-app"
APP_CONF = f"{APP_ROOT}/etc/app.conf"
READY = 420.0  # boot to agent under TCG on a busy shared 2-core host


def write_spec(path: Path, pool_dir: Path) -> Path:
    path.write_text(probe_vm_spec(GOLDEN, POOL, pool_dir, READY), encoding="utf-8")
    return path


def cli(*args: str, timeout: float = 900) -> Result:
    """The real CLI in a subprocess, sharing the machine's probe-image cache."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(MACHINE_CACHE)}
    proc = subprocess.run(
        [sys.executable, "-m", "vmforge", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def parallel_cli(*commands: tuple[str, ...], timeout: float = 1500) -> list[Result]:
    """Several real CLI processes at once (started together, each waited for)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(MACHINE_CACHE)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vmforge", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in commands
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append(Result(proc.returncode, out, err))
    return results


def write_probe_app(folder: Path) -> Path:
    """A package for the probe: its payload and its setting live on the clone's disk."""
    folder.mkdir()
    payload = b"probe payload\n"
    (folder / "payload.bin").write_bytes(payload)
    (folder / "app.conf.j2").write_text("guard=on\n")
    (folder / "package.toml").write_text(
        f"""name = "probeapp"
kind = "app"
version = "1"
os = ["linux"]

[app]
install = ["mkdir -p {APP_ROOT}/installed && cp {{stage}}/payload.bin {APP_ROOT}/installed/payload.bin && sync"]
verify = ["test -f {APP_ROOT}/installed/payload.bin", "grep -qx guard=on {APP_CONF}"]

[[files]]
path = "payload.bin"
sha256 = "{hashlib.sha256(payload).hexdigest()}"

[[config]]
template = "app.conf.j2"
destination = "{APP_CONF}"
"""
    )
    return folder


def write_clone_spec(folder: Path, golden_spec: Path) -> Path:
    """The golden spec plus the package (the image's inputs stay the golden spec's)."""
    app = write_probe_app(folder / "probeapp")
    path = folder / "clone.toml"
    path.write_text(golden_spec.read_text() + f'\n[[packages]]\nname = "probeapp"\npath = "{app}"\n')
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(1800)  # six TCG boots (three at once) on a shared, busy 2-core host
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

    # Three linked clones at once, each with the package re-applied over its agent.
    clone_spec = write_clone_spec(tmp_path, spec_file)
    image_tpm = state_digest(tpm_copy(image))
    results = parallel_cli(*[("clone", image.id[:12], name, "--spec", str(clone_spec), "--json") for name in CLONES])
    identities = {}
    for name, made in zip(CLONES, results, strict=True):
        assert made.code == 0, made.stderr
        report = made.json()
        assert report["base_unchanged"] and report["identity"]
        assert [o["action"] for o in report["reapplied"]["packages"]["packages"]] == ["installed"]
        assert report["reapplied"]["guards"]["skipped"].startswith(GUARDS_WINDOWS_ONLY)
        guest = agent_session(SYSTEM_URI, name)()
        assert "vmforge golden probe image" in (read_probe_file(guest, GOLDEN_FILE) or "")  # the base's content
        assert (read_probe_file(guest, PROBE_IDENTITY) or "").startswith(f"name={name}\n")  # its own identity
        assert read_probe_file(guest, APP_CONF) == "guard=on\n"
        identities[name] = report["identity"]
        files = vm_files(system_conn.lookupByName(name))
        assert files.tpm_dir is not None and files.tpm_dir.is_dir()  # its own (running swtpm writes it)
    assert state_digest(tpm_copy(image)) == image_tpm  # the image's copy is never written
    assert len(set(identities.values())) == len(CLONES)
    assert sha(base) == image.disk_sha256  # never modified by any clone

    first, second, _third = CLONES
    clean = cli("reprovision", first, "--check", "--spec", str(clone_spec), "--json")
    assert clean.code == 0, clean.stderr
    assert {"domain definition", "packages"} <= set(clean.json()["checked"])
    assert any(n.startswith("guards: " + GUARDS_WINDOWS_ONLY) for n in clean.json()["not_checked"])
    drifted = cli("reprovision", first, "--check", "--spec", str(clone_spec), "--set", "vm.memory=320MiB", "--json")
    assert drifted.code == 3, drifted.stderr
    assert any("domain memory" in d for d in drifted.json()["error"]["report"]["drift"])

    # Snapshot on the probe: power off, take the known-good snapshot, start, damage, reprovision.
    system_conn.lookupByName(first).destroy()  # its writes were synced
    overlay = img_pool_dir / f"{first}.qcow2"
    taken = cli("snapshot", first, "good", "--known-good", "--connect", SYSTEM_URI, "--json")
    assert taken.code == 0, taken.stderr
    good_content = disk_content_sha(overlay, tmp_path)
    listed_snaps = cli("snapshot", "list", first, "--json").json()
    assert listed_snaps["known_good"] == "good" and [r["label"] for r in listed_snaps["snapshots"]] == ["good"]
    system_conn.lookupByName(first).create()
    guest = agent_session(SYSTEM_URI, first)()
    guest.transport.wait_ready(time.monotonic() + READY)
    damage(guest)
    broken = cli("reprovision", first, "--check", "--spec", str(clone_spec), "--json")
    assert broken.code == 3, broken.stderr
    assert any(d.startswith("package probeapp:") for d in broken.json()["error"]["report"]["drift"])
    system_conn.lookupByName(first).destroy()
    assert disk_content_sha(overlay, tmp_path) != good_content
    assert cli("revert", first, "good", "--connect", SYSTEM_URI).code == 0  # the plain revert, on the probe
    assert disk_content_sha(overlay, tmp_path) == good_content

    # The same damage in the second clone, then both reprovisioned at once: the first from its
    # known-good snapshot, the second (no snapshot) cloned again from the image.
    damage(agent_session(SYSTEM_URI, second)())
    with pytest.raises(UsageError, match="has no known-good snapshot"):
        choose_source(VmDir(second), "snapshot")
    assert choose_source(VmDir(second), None) == "image"
    fixed, again_cloned = parallel_cli(
        ("reprovision", first, "--spec", str(clone_spec), "--json"),
        ("reprovision", second, "--spec", str(clone_spec), "--json"),
    )
    assert fixed.code == 0, fixed.stderr
    back = fixed.json()
    assert back["from"] == "snapshot" and back["snapshot"] == "good" and back["restarted"]
    assert [o["action"] for o in back["reapplied"]["packages"]["packages"]] == ["already installed"]
    assert_repaired(agent_session(SYSTEM_URI, first)(), first, identities[first])
    assert cli("reprovision", first, "--check", "--spec", str(clone_spec), "--json").code == 0
    assert again_cloned.code == 0, again_cloned.stderr
    redone = again_cloned.json()
    assert redone["from"] == "image" and redone["image"] == image.id and redone["restarted"]
    assert [o["action"] for o in redone["reapplied"]["packages"]["packages"]] == ["installed"]
    assert_repaired(agent_session(SYSTEM_URI, second)(), second, None)
    assert redone["clone"]["identity"] != identities[second]  # a new clone, a new identity

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


def damage(guest: Guest) -> None:
    """Delete the base's file and the package's payload, and turn the package's setting off."""
    script = f"rm {GOLDEN_FILE} {APP_ROOT}/installed/payload.bin && echo guard=off > {APP_CONF} && sync"
    assert guest.run_script(script, timeout=60).rc == 0


def assert_repaired(guest: Guest, name: str, identity: str | None) -> None:
    assert "vmforge golden probe image" in (read_probe_file(guest, GOLDEN_FILE) or "")
    assert read_probe_file(guest, APP_CONF) == "guard=on\n"
    assert read_probe_file(guest, f"{APP_ROOT}/installed/payload.bin") == "probe payload\n"
    seen = read_probe_file(guest, PROBE_IDENTITY) or ""
    assert seen.startswith(f"name={name}\n")
    if identity is not None:
        assert seen.endswith(f"id={identity}\n")  # the snapshot's, not a new one
