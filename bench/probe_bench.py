"""Benchmark: probe boot-to-agent time (vs Debian's bzImage as baseline) and agent copy
throughput (vs a local copy of the same file), in one run.

    .venv/bin/python bench/probe_bench.py [--runs 2] [--mb 16] [--json]
        [--extra-cmdline "OPTS"] [--bzimage] [--baseline-image DIR] [--vmforge-probe] [--no-copy]

Boots the cached probe image under plain QEMU (TCG) with the test helper in
tests/integration/probe_vm.py, alternating between variants of the same image, ``--runs`` times
each, so all see the same machine load (the machine is shared: compare within one run only):

- ``probe``: the image as built (the uncompressed vmlinux through PVH entry, ``CMDLINE``);
- ``baseline_previous_cmdline``: the same, with the kernel command line from before the
  boot-time options (``BASELINE_CMDLINE``);
- ``baseline_image`` (``--baseline-image DIR``): an older cached image (``~/.cache/vmforge/probe/<key>``,
  e.g. the one built before a change to the init, modules or command line), with its own line;
- ``probe_extra_cmdline`` (``--extra-cmdline``): ``CMDLINE`` plus the given options, to try one;
- ``baseline_bzimage`` (``--bzimage``): the same initramfs behind Debian's XZ bzImage;
- ``vmforge_probe_demo`` (``--vmforge-probe``): ``vmforge probe`` itself on the built-in demo spec
  (renamed ``vmforge-bench``), through libvirtd, once per round: the domain vmforge builds
  (PCIe root ports, USB, virtio-gpu, ivshmem, a fresh 1 GiB virtio disk the probe formats), timed
  by ``run_probe`` from the domain's start to the agent's answer.  Reported beside the plain
  boots, not part of ``meets_target``.

Each boot is timed from QEMU's start to the first answered ``guest-ping``, and split by when each
``VMFORGE-PHASE`` marker shows up in the serial log (polled every 50 ms):

- ``to_init``: firmware, kernel load/decompression and kernel boot, until the init's first marker;
- ``modules``: ``probe-init`` -> ``probe-modules`` (modprobe of what the hardware needs);
- ``devices``: ``probe-modules`` -> ``probe-media`` (the CD drives the command line names, mounted);
- ``to_agent``: ``probe-media`` -> the agent answering (disk, probe-ready, qemu-ga start).

Then a random file goes into the guest and back through the agent's QEMU socket, verified by
the guest's sha256sum.  Target: boot-to-agent under 5 s with TCG (``meets_target`` is the median
of the ``probe`` runs).  Not part of CI: figures depend on the machine and its load (reported).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

from probe_vm import MACHINE_CACHE, ProbeVm, boot_probe  # noqa: E402

from vmforge.guest.agent import AgentTransport  # noqa: E402
from vmforge.guest.os_linux import LinuxAdapter  # noqa: E402
from vmforge.guest.session import Guest  # noqa: E402
from vmforge.guest.transport import GuestError  # noqa: E402
from vmforge.probe.image import ProbeImage, ensure_probe_image  # noqa: E402
from vmforge.probe.run import probe_spec  # noqa: E402
from vmforge.probe.specs import BUILTIN_SPECS  # noqa: E402
from vmforge.spec import Overrides, load_spec  # noqa: E402
from vmforge.ui import Reporter  # noqa: E402

TARGET_SECONDS = 5.0
# The probe's kernel command line before the boot-time options (the baseline each run compares
# against, booted alternately with the current CMDLINE from the same image).
BASELINE_CMDLINE = "console=ttyS0 panic=-1 loglevel=4"
MARKS = ("probe-init", "probe-modules", "probe-media", "probe-ready", "probe-agent")


def _seen(vm: ProbeVm, marks: dict[str, float]) -> None:
    now = time.monotonic() - vm.started
    for event in vm.phases():
        marks.setdefault(event.phase, now)


def timed_boot(image: ProbeImage, work: Path, timeout: float = 300.0) -> dict[str, Any]:
    """One boot: seconds to each marker and to the agent's first answer."""
    marks: dict[str, float] = {}
    with boot_probe(image, work) as vm:
        transport = vm.transport()
        deadline = time.monotonic() + timeout
        while True:
            _seen(vm, marks)
            try:
                transport.wait_ready(time.monotonic() + 0.05)
                break
            except GuestError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        agent = time.monotonic() - vm.started
        _seen(vm, marks)
        transport.channel.close()

    def span(a: str, b: str) -> float | None:
        return round(marks[b] - marks[a], 2) if a in marks and b in marks else None

    return {
        "boot_to_agent": round(agent, 2),
        "to_init": round(marks["probe-init"], 2) if "probe-init" in marks else None,
        "modules": span("probe-init", "probe-modules"),
        "devices": span("probe-modules", "probe-media"),
        "to_agent": round(agent - marks["probe-media"], 2) if "probe-media" in marks else None,
    }


def copy_throughput(image: ProbeImage, work: Path, mb: int) -> dict[str, float]:
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(mb * 1024 * 1024))
    local_start = time.monotonic()
    shutil.copyfile(payload, work / "local-copy.bin")
    local = time.monotonic() - local_start
    results = {"local_copy_mb_s": round(mb / max(local, 1e-6), 1)}
    with boot_probe(image, work) as vm:
        transport = vm.transport()
        transport.wait_ready(time.monotonic() + 300)
        vm.wait_phase("probe-ready", timeout=60)
        for chunk_kib in (64, 1024):
            guest = Guest(AgentTransport(transport.channel, chunk_size=chunk_kib * 1024), LinuxAdapter())
            up_start = time.monotonic()
            guest.copy_in(payload, "/tmp/payload.bin")
            up = time.monotonic() - up_start
            down_start = time.monotonic()
            guest.copy_out("/tmp/payload.bin", work / "back.bin")
            down = time.monotonic() - down_start
            # Verified copies: the time includes the guest's sha256sum (slow under TCG).
            results[f"agent_upload_mb_s_{chunk_kib}k"] = round(mb / up, 2)
            results[f"agent_download_mb_s_{chunk_kib}k"] = round(mb / down, 2)
    return results


def vmforge_probe_boot(image: ProbeImage) -> dict[str, Any]:
    """One ``vmforge probe --builtin probe-demo --set vm.name=vmforge-bench`` through the library."""
    spec, _source = load_spec(BUILTIN_SPECS["probe-demo"], Overrides(["vm.name=vmforge-bench"]))
    report = probe_spec(spec, image, reporter=Reporter(quiet=True))
    if not report.ok:
        raise SystemExit(f"vmforge probe failed: {report.problems}")
    marks = {phase["phase"]: phase["t"] for phase in report.phases}  # seconds after probe-init
    agent_after_init = marks.get("probe-agent")
    return {
        "boot_to_agent": round(report.boot_to_agent_s, 2),
        "to_init": round(report.boot_to_agent_s - agent_after_init, 2) if agent_after_init is not None else None,
        "modules": marks.get("probe-modules"),
        "disk": round(marks["probe-disk"] - marks["probe-media"], 2) if "probe-disk" in marks else None,
    }


def cached_image(folder: Path, current: ProbeImage) -> ProbeImage:
    """An older probe image from the cache (other init, modules, command line) as a baseline."""
    manifest = json.loads((folder / "manifest.json").read_text())
    kernel = folder / "vmlinux" if (folder / "vmlinux").is_file() else folder / "vmlinuz"
    cmdline = manifest.get("inputs", {}).get("cmdline", BASELINE_CMDLINE)
    return dataclasses.replace(
        current, key=manifest["key"], kernel=kernel, initrd=folder / "initrd.img", cmdline=cmdline, manifest=manifest
    )


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="boots per kernel (alternating rounds)")
    parser.add_argument("--mb", type=int, default=16, help="size of the copied file in MiB")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--extra-cmdline",
        default="",
        help="also boot a variant with these kernel options appended (compared in the same run)",
    )
    parser.add_argument("--bzimage", action="store_true", help="also boot Debian's XZ bzImage (PVH's baseline)")
    parser.add_argument(
        "--baseline-image",
        type=Path,
        help="also boot an older cached probe image (a cache_home()/probe/<key> folder) with its own command line",
    )
    parser.add_argument("--no-copy", action="store_true", help="skip the agent copy throughput part")
    parser.add_argument(
        "--vmforge-probe",
        action="store_true",
        help="also run 'vmforge probe' on the built-in demo spec through libvirtd, once per round",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average_1m_start": round(os.getloadavg()[0], 2)}
    started = time.monotonic()
    image = ensure_probe_image(MACHINE_CACHE)
    results["image_seconds"] = round(time.monotonic() - started, 2)
    kernels = {"probe": image, "baseline_previous_cmdline": dataclasses.replace(image, cmdline=BASELINE_CMDLINE)}
    if args.extra_cmdline:
        kernels["probe_extra_cmdline"] = dataclasses.replace(image, cmdline=image.cmdline_with(args.extra_cmdline))
    if args.baseline_image:
        kernels["baseline_image"] = cached_image(args.baseline_image, image)
    if args.bzimage:
        kernels["baseline_bzimage"] = dataclasses.replace(image, kernel=image.bzimage)
    results["cmdlines"] = {name: boot_image.cmdline for name, boot_image in kernels.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in kernels}
    if args.vmforge_probe:
        runs["vmforge_probe_demo"] = []
    with tempfile.TemporaryDirectory(prefix="vmforge-bench-") as tmp:
        for index in range(args.runs):
            for name, boot_image in kernels.items():
                work = Path(tmp) / f"{name}-{index}"
                work.mkdir()
                runs[name].append(timed_boot(boot_image, work))
            if args.vmforge_probe:
                runs["vmforge_probe_demo"].append(vmforge_probe_boot(image))
        results["boots"] = runs
        for name, boots in runs.items():
            results[name] = {key: median(boots, key) for key in boots[0]}
        ours = results["probe"]["boot_to_agent"]
        for name in kernels:
            theirs = results[name]["boot_to_agent"]
            if name != "probe":
                results[f"ratio_to_{name}"] = round(ours / theirs, 2) if ours and theirs else None
        results["target_seconds"] = TARGET_SECONDS
        results["meets_target"] = bool(ours is not None and ours < TARGET_SECONDS)
        if args.no_copy:
            results["load_average_1m_end"] = round(os.getloadavg()[0], 2)
            _print(results, args.json)
            return 0
        copy_dir = Path(tmp) / "copy"
        copy_dir.mkdir()
        results.update(copy_throughput(image, copy_dir, args.mb))
    results["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    _print(results, args.json)
    return 0


def _print(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            if key != "boots":
                print(f"{key:32} {value}")


if __name__ == "__main__":
    sys.exit(main())
