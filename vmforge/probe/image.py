"""Build (once) and cache the probe guest: a Debian kernel plus a busybox + qemu-ga initramfs.

Everything comes from Debian packages fetched with ``apt-get download`` (no other network):

- ``linux-image-amd64`` (the generic kernel; the cloud flavour lacks AHCI, so it cannot see q35's
  SATA CD-ROMs).  Only the modules the probe may load go into the initramfs, listed in
  ``/etc/vmforge/modules`` by trigger (``MODULE_GROUPS``: the init loads a group only for the
  hardware it finds) and in dependency order, worked out from the ``modules.dep`` that
  busybox's depmod writes for the unpacked kernel.
  The kernel is stored as the uncompressed ELF ``vmlinux`` (PVH entry, :mod:`vmforge.probe.kernel`)
  when it has the PVH note, which spares TCG guests the in-guest XZ decompression.
- ``busybox-static`` for init, sh and every tool (``acpid`` turns the ACPI power button into a
  clean power-off, so ``vmforge stop`` / ``virsh shutdown`` work); ``qemu-guest-agent``'s ``qemu-ga`` plus the
  shared libraries ``ldd`` lists (taken from the host, whose library packages are part of the
  cache key).
- templates/probe/: the init scripts and the report script (real shell files for busybox sh).
- ``vmforge-ivshmem-peer``: the static C peer of the ivshmem channel
  (:func:`vmforge.ivshmem.guest_peer.build_guest_peer`, gcc -static); its SHA-256 is in the key.

The result lives in ``cache_home()/probe/<key>/`` where the key hashes the package versions, the
host library versions and the init files: a new kernel or an edited script gives a new key.  The
cache is built in a temporary folder beside it and renamed into place (atomic), under a lock
file (concurrent builds wait, then reuse), and every hit is checked against the manifest's
SHA-256s (a damaged entry is rebuilt).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge import paths
from vmforge.errors import CommandFailed, VmforgeError
from vmforge.hashing import sha256_file as _sha256
from vmforge.ivshmem.guest_peer import build_guest_peer
from vmforge.logs import get_logger
from vmforge.probe import cpio
from vmforge.probe.kernel import pvh_vmlinux
from vmforge.resources import DataFolder, data_dir

log = get_logger("probe.image")

FORMAT = 5  # bump when the image layout changes without a package or script change
KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"
AGENT = "qemu-guest-agent"
AGENT_BINARY = "usr/sbin/qemu-ga"
# What the probe may need from the kernel, and when: probe-init loads a group only when its
# trigger is present (the way udev and modprobe would, from the hardware it finds), so a probe
# without CDs, disk or ivshmem does not pay for their drivers under TCG.  Triggers:
# - ``always``;
# - ``pci=VVVV:DDDD`` (vendor:device) and ``pci-class=CCSS`` (class and subclass) of a PCI device;
# - ``scsi=T``: a SCSI device of type T (0 disk, 5 CD-ROM), known once the controllers' drivers
#   are in (modprobe returns after the drivers' probes, so the second pass sees every device);
# - ``arg=NAME``: ``NAME=...`` on the kernel command line.
# Dependencies come from modules.dep; each group lists its whole closure in load order.
MODULE_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("always",), ("virtio_pci", "virtio_console")),  # the agent's virtio-serial port
    # The ACPI power button as an input device (acpid: shutdown requests), /dev/input/event*.
    (("always",), ("button", "evdev")),
    (("pci-class=0106",), ("ahci",)),  # SATA (AHCI): q35's CD-ROMs, SATA disks
    (("pci=1af4:1001", "pci=1af4:1042"), ("virtio_blk",)),
    (("pci=1af4:1004", "pci=1af4:1048"), ("virtio_scsi",)),
    # ivshmem (1af4:1110) doorbell interrupts in the guest (vmforge-ivshmem-peer --doorbell): the
    # Debian kernel has no CONFIG_VFIO_NOIOMMU, so these work only with an IOMMU (intel_iommu=on).
    (("pci=1af4:1110",), ("vfio_iommu_type1", "vfio_pci")),
    (("scsi=5",), ("sr_mod", "isofs", "udf")),
    (("scsi=0",), ("sd_mod",)),
    (("arg=vmforge.disk",), ("crc32c_generic", "ext4")),  # the probe's own disk (mke2fs, mount)
)
MODULES = tuple(dict.fromkeys(name for _, names in MODULE_GROUPS for name in names))
INIT_FILES = {  # templates/probe/<name> -> path in the initramfs, mode
    "inittab": ("etc/inittab", 0o644),
    "probe-init": ("etc/vmforge/probe-init", 0o755),
    "run-agent": ("etc/vmforge/run-agent", 0o755),
    "probe-shutdown": ("etc/vmforge/probe-shutdown", 0o755),
    "vmforge-phase": ("usr/bin/vmforge-phase", 0o755),
    "os-release": ("etc/os-release", 0o644),
    "vmforge-probe-report": ("usr/bin/vmforge-probe-report", 0o755),
    "power-button": ("etc/acpi/PWRF/00000080", 0o755),  # busybox acpid's action for the power button
    "shutdown": ("sbin/shutdown", 0o755),  # what qemu-ga's guest-shutdown runs (busybox has none)
}
PEER_PATH = "usr/bin/vmforge-ivshmem-peer"
# panic=-1: a kernel panic reboots at once (QEMU with -no-reboot then exits) instead of hanging.
# The rest cuts emulated work that the serial log's initcall_debug timings showed under TCG
# (bench/probe_bench.py measures it against the line without them, in the same run):
# - rodata=off: no read-only remap and no W+X page-table walk (CONFIG_DEBUG_WX, ~0.4 s);
# - cryptomgr.notests: no boot-time self-tests of the built-in crypto algorithms (~0.5 s);
# - initcall_blacklist: crypto_kdf108_init only self-tests SP800-108 KDF (~0.6-0.75 s; nothing in
#   the probe derives keys), init_kprobe_trace only sets up kprobe tracing (~0.15 s);
# - ipv6.disable=1: the built-in IPv6 stack stops right after registering (inet6_init, ~0.3 s);
#   the probe has no network use (the agent talks over virtio-serial);
# - pcie_ports=compat: PCIe ports are plain bridges, without the port services driver (hotplug,
#   AER, PME: pcie_portdrv_init ~0.2 s with libvirt's root ports); devices behind them are
#   found as before, and the probe hot-plugs nothing.
# A throw-away test guest running only vmforge's init and qemu-ga loses nothing it uses.
BOOT_SPEEDUPS = (
    "rodata=off",
    "cryptomgr.notests",
    "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace",
    "ipv6.disable=1",
    "pcie_ports=compat",
)
CMDLINE = " ".join(("console=ttyS0 panic=-1 loglevel=4", *BOOT_SPEEDUPS))
COMMAND_TIMEOUT = 600


@dataclass(frozen=True)
class ProbeImage:
    key: str
    kernel: Path  # what the probe boots: vmlinux (PVH) when the kernel has the entry, else the bzImage
    initrd: Path
    cmdline: str
    manifest: dict[str, Any]

    @property
    def bzimage(self) -> Path:
        """Debian's compressed kernel as shipped (the bench's baseline)."""
        return self.kernel.with_name("vmlinuz")

    def cmdline_with(self, *extra: str) -> str:
        return " ".join((self.cmdline, *extra))


def _run(argv: Sequence[str], *, cwd: Path | None = None, what: str) -> str:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise CommandFailed(
            f"{what}: {argv[0]} is not installed", hint="run scripts/setup-host (Debian 12 host tools)"
        ) from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{what}: {argv[0]} did not finish within {COMMAND_TIMEOUT}s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CommandFailed(
            f"{what} failed: {' '.join(argv[:3])} exited {proc.returncode}: {' / '.join(tail)}",
            hint="the probe image is built from Debian packages: check 'apt-get update' and the mirror",
            returncode=proc.returncode,
            output=proc.stdout + proc.stderr,
        )
    return proc.stdout


# -- what goes in (the cache key) -------------------------------------------------------------
def _candidates(packages: Sequence[str]) -> dict[str, str]:
    """The version apt would install now, per package (one apt-cache call)."""
    text = _run(["apt-cache", "policy", *packages], what="looking up the probe's packages")
    found: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        else:
            match = re.match(r"\s*Candidate:\s*(\S+)", line)
            if match and current and match.group(1) != "(none)":
                found[current] = match.group(1)
    for package in packages:
        if package not in found:
            raise VmforgeError(
                f"Debian package {package} has no installable version here",
                hint="run 'apt-get update' (the probe image is built from Debian packages)",
            )
    return {package: found[package] for package in packages}


def _kernel_package() -> str:
    text = _run(["apt-cache", "depends", KERNEL_META], what=f"resolving {KERNEL_META}")
    match = re.search(r"Depends:\s*(linux-image-\S+)", text)
    if match is None:
        raise VmforgeError(f"cannot tell which kernel {KERNEL_META} stands for", hint="run 'apt-get update'")
    return match.group(1)


def _host_library_versions() -> dict[str, str]:
    """Installed versions of the library packages qemu-ga links against (copied from the host)."""
    text = _run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends", AGENT],
        what=f"listing {AGENT}'s libraries",
    )  # fmt: skip
    names = sorted({line.strip() for line in text.splitlines() if re.fullmatch(r"lib[\w.+-]+", line.strip())})
    if not names:
        return {}
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # missing packages only make dpkg-query exit 1; the installed ones are still listed
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def _init_files() -> dict[str, bytes]:
    folder = data_dir(DataFolder.TEMPLATES) / "probe"
    return {name: (folder / name).read_bytes() for name in INIT_FILES}


# apt's and dpkg's databases: while none of them changed, what apt would install and what is
# installed cannot have changed either, so the package facts are taken from a small memo.
APT_STATE = ("var/lib/dpkg/status", "var/cache/apt/pkgcache.bin", "var/lib/apt/lists")
APT_MEMO = ".apt-facts.json"  # hidden, like the lock files: cache entries are the visible names


def apt_stamp(root: Path = Path("/")) -> str:
    """A fingerprint of apt's and dpkg's databases (names, sizes and mtimes, no contents)."""
    parts: list[str] = []
    for relative in APT_STATE:
        path = root / relative
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        for entry in entries:
            with contextlib.suppress(OSError):
                stat = entry.stat()
                parts.append(f"{entry.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _apt_facts() -> dict[str, Any]:
    kernel = _kernel_package()
    return {
        "packages": _candidates([kernel, BUSYBOX, AGENT]),
        "kernel_package": kernel,
        "host_libraries": _host_library_versions(),
    }


def apt_facts(memo_dir: Path | None = None, root: Path = Path("/")) -> dict[str, Any]:
    """The package facts of the cache key: from the memo in ``memo_dir`` while apt's and dpkg's
    databases are unchanged (three apt-cache runs cost seconds on every probe, create and
    clone), else asked afresh and remembered."""
    stamp = apt_stamp(root)
    memo = (memo_dir or probe_cache_dir()) / APT_MEMO
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        recorded = json.loads(memo.read_text())
        if recorded["format"] == FORMAT and recorded["stamp"] == stamp:
            return dict(recorded["facts"])
    facts = _apt_facts()
    with contextlib.suppress(OSError):  # a memo that cannot be written only costs the next caller time
        memo.parent.mkdir(parents=True, exist_ok=True)
        partial = memo.with_name(f"{APT_MEMO}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"format": FORMAT, "stamp": stamp, "facts": facts}, sort_keys=True))
        partial.replace(memo)
    return facts


def resolve_inputs(memo_dir: Path | None = None) -> dict[str, Any]:
    """Everything the image is made of, as data; the cache key is its hash."""
    return {
        "format": FORMAT,
        **apt_facts(memo_dir),
        "modules": [[list(triggers), list(names)] for triggers, names in MODULE_GROUPS],
        "init_files": {name: hashlib.sha256(data).hexdigest() for name, data in _init_files().items()},
        "cmdline": CMDLINE,
        "ivshmem_peer": _sha256(build_guest_peer()),
    }


def cache_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


# -- modules ----------------------------------------------------------------------------------
MODULE_SIG_MAGIC = b"~Module signature appended~\n"
MODULE_SIG_INFO = 12  # struct module_signature: 8 bytes of ids and lengths, then sig_len (be32)


def strip_module_signature(data: bytes) -> bytes:
    """A ``.ko`` without its appended signature (unchanged when it has none).

    Under TCG the kernel's check of each signature (a SHA-512 of the whole module, then RSA)
    took ~0.45 s of the ~2 s module loading (same-run comparison, 4 boots each).  Without a
    signature the kernel loads the module all the same unless signatures are enforced
    (``CONFIG_MODULE_SIG_FORCE``, ``module.sig_enforce`` or lockdown; the probe boots BIOS, so
    no secure-boot lockdown) and only marks itself tainted (``E``).  The module's code is
    byte-for-byte Debian's.
    """
    if not data.endswith(MODULE_SIG_MAGIC):
        return data
    info_end = len(data) - len(MODULE_SIG_MAGIC)
    info = data[info_end - MODULE_SIG_INFO : info_end]
    sig_len = int.from_bytes(info[8:12], "big")
    start = info_end - MODULE_SIG_INFO - sig_len
    if len(info) != MODULE_SIG_INFO or start < 0:
        raise VmforgeError(
            "a kernel module's signature trailer is malformed", hint="report this with the kernel version"
        )
    return data[:start]


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """``modules.dep`` as {module path: [dependency paths]} (paths relative to the release dir)."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        module, sep, rest = line.partition(":")
        if sep:
            deps[module.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def load_order(deps: dict[str, list[str]], wanted: Sequence[str]) -> list[str]:
    """Module paths in load order, each after everything it depends on."""
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in order:
            return
        if path in visiting:
            raise VmforgeError(f"modules.dep has a dependency loop at {path}")
        visiting.add(path)
        for dep in deps.get(path, []):
            visit(dep)
        visiting.discard(path)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            raise VmforgeError(f"kernel module {name} is not in the kernel package", hint="is it built in, or renamed?")
        visit(path)
    return order


def module_table(deps: dict[str, list[str]], groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[str]:
    """``/etc/vmforge/modules``: a ``TRIGGER NAME PATH`` line per module and trigger, each
    group's closure in load order (probe-init skips a module already loaded)."""
    lines: list[str] = []
    for triggers, names in groups:
        closure = load_order(deps, names)
        for trigger in triggers:
            if not trigger or " " in trigger:
                raise VmforgeError(f"probe module trigger {trigger!r} is not a single word")
            lines.extend(f"{trigger} {module_name(path)} {path}" for path in closure)
    return lines


# -- shared libraries -------------------------------------------------------------------------
def ldd_paths(binary: Path) -> list[Path]:
    """Absolute paths of the shared objects (and loader) ``binary`` needs, resolved on this host."""
    text = _run(["ldd", str(binary)], what=f"listing libraries of {binary.name}")
    found: list[Path] = []
    for raw in text.splitlines():
        line = raw.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" ", 1)[0]
            if target == "not":
                raise VmforgeError(
                    f"{binary.name} needs a library this host lacks: {line}", hint="run scripts/setup-host"
                )
        else:
            target = line.split(" ", 1)[0]
        if target.startswith("/"):
            found.append(Path(target))
    return found


# -- building ---------------------------------------------------------------------------------
def _entries_for_tree(entries: dict[str, cpio.Entry]) -> list[cpio.Entry]:
    """Add every parent directory the entries need."""
    result = dict(entries)
    for name in list(entries):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            result.setdefault(parent, cpio.directory(parent))
    return list(result.values())


def _signatures_enforced(config: Path) -> bool:
    """Whether the kernel refuses unsigned modules (then the probe keeps their signatures)."""
    return config.is_file() and "CONFIG_MODULE_SIG_FORCE=y" in config.read_text().splitlines()


def _build(inputs: dict[str, Any], work: Path, out: Path) -> dict[str, Any]:
    debs = work / "debs"
    root = work / "root"
    debs.mkdir()
    root.mkdir()
    specs = [f"{pkg}={version}" for pkg, version in inputs["packages"].items()]
    _run(["apt-get", "download", "-q", *specs], cwd=debs, what="downloading the probe's Debian packages")
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"unpacking {deb.name}")

    busybox = root / "bin" / "busybox"
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    if not vmlinuz or not busybox.is_file():
        raise VmforgeError("the downloaded packages lack a kernel or busybox", hint="report this with the package list")
    release = vmlinuz[0].name.removeprefix("vmlinuz-")
    _run([str(busybox), "depmod", "-b", str(root), release], what="computing kernel module dependencies")
    module_root = root / "lib" / "modules" / release
    deps = parse_modules_dep((module_root / "modules.dep").read_text())
    order = load_order(deps, MODULES)

    entries: dict[str, cpio.Entry] = {}

    def add(entry: cpio.Entry) -> None:
        entries[entry.name] = entry

    add(cpio.regular("bin/busybox", busybox.read_bytes(), 0o755))
    for applet in _run([str(busybox), "--list-full"], what="listing busybox applets").split():
        if applet != "bin/busybox":
            depth = applet.count("/")
            add(cpio.symlink(applet, "../" * depth + "bin/busybox"))
    add(cpio.symlink("init", "bin/busybox"))
    for folder in ("dev", "proc", "sys", "run", "tmp", "media", "mnt", "root", "var"):
        add(cpio.directory(folder))
    add(cpio.char_device("dev/console", 5, 1))
    for name, data in _init_files().items():
        target, mode = INIT_FILES[name]
        add(cpio.regular(target, data, mode))

    enforced = _signatures_enforced(root / "boot" / f"config-{release}")
    for rel in order:
        data = (module_root / rel).read_bytes()
        add(cpio.regular(f"lib/modules/{release}/{rel}", data if enforced else strip_module_signature(data)))
    dep_lines = [f"{rel}: {' '.join(deps[rel])}" for rel in order]
    add(cpio.regular(f"lib/modules/{release}/modules.dep", ("\n".join(dep_lines) + "\n").encode()))
    add(cpio.regular("etc/vmforge/modules", ("\n".join(module_table(deps, MODULE_GROUPS)) + "\n").encode()))

    add(cpio.regular(PEER_PATH, build_guest_peer().read_bytes(), 0o755))

    agent = root / AGENT_BINARY
    add(cpio.regular(AGENT_BINARY, agent.read_bytes(), 0o755))
    libraries = ldd_paths(agent)
    for library in libraries:
        add(cpio.regular(str(library).lstrip("/"), library.resolve().read_bytes(), 0o755))

    out.mkdir()
    vmlinux = pvh_vmlinux(vmlinuz[0].read_bytes())
    bzimage = out / "vmlinuz"  # kept also with PVH: the bench boots it as the baseline
    kernel = out / "vmlinux" if vmlinux is not None else bzimage
    initrd = out / "initrd.img"
    shutil.copyfile(vmlinuz[0], bzimage)
    if vmlinux is not None:
        kernel.write_bytes(vmlinux)
    else:
        log.info("kernel %s has no PVH entry: the probe boots the bzImage (slower under TCG)", release)
    cpio.write_initramfs(initrd, _entries_for_tree(entries))
    return {
        "key": out.name,
        "inputs": inputs,
        "kernel_release": release,
        "modules": order,
        "libraries": [str(p) for p in libraries],
        "kernel": kernel.name,
        "files": {name: _sha256(out / name) for name in sorted({kernel.name, bzimage.name, initrd.name})},
    }


def _load(entry: Path) -> ProbeImage | None:
    """The cached image at ``entry`` when it is complete and undamaged."""
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        files = manifest["files"]
        if any(_sha256(entry / name) != digest for name, digest in files.items()):
            log.warning("probe image cache %s is damaged; rebuilding it", entry)
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kernel = entry / manifest.get("kernel", "vmlinuz")
    return ProbeImage(manifest["key"], kernel, entry / "initrd.img", CMDLINE, manifest)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def probe_cache_dir(cache_root: Path | None = None) -> Path:
    return (cache_root or paths.cache_home()) / "probe"


def ensure_probe_image(cache_root: Path | None = None, inputs: dict[str, Any] | None = None) -> ProbeImage:
    """The probe image for the packages available now: from the cache, or built (once) into it."""
    inputs = inputs or resolve_inputs(probe_cache_dir(cache_root))
    key = cache_key(inputs)
    base = probe_cache_dir(cache_root)
    entry = base / key
    image = _load(entry)
    if image is not None:
        return image
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base / f".{key}.lock"):
        image = _load(entry)  # another process may have built it while we waited
        if image is not None:
            return image
        if entry.exists():
            shutil.rmtree(entry)
        log.info("building probe image %s from %s", key, ", ".join(inputs["packages"]))
        with tempfile.TemporaryDirectory(prefix=f".build-{key}-", dir=base) as tmp:
            work = Path(tmp)
            staged = work / key
            manifest = _build(inputs, work, staged)
            (staged / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            staged.rename(entry)
    image = _load(entry)
    if image is None:
        raise VmforgeError(f"the probe image at {entry} did not verify right after it was built")
    return image
