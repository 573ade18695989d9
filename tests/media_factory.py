"""Build real installer-like media for tests: WIM/ESD files with wimtools, ISOs with pycdlib.

The files are tiny but real: wimlib writes the same header and XML metadata a Microsoft WIM
has, and the ISOs carry a Windows volume id, publisher and El Torito records, so that
``osinfo-detect`` recognises them as Windows installers.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pycdlib


@dataclass(frozen=True)
class FakeImage:
    name: str
    edition_id: str
    build: int
    installation_type: str = "Client"
    arch: int = 9  # amd64
    description: str = ""
    languages: tuple[str, ...] = ("en-US",)
    major: int = 10
    minor: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


def _properties(image: FakeImage) -> list[str]:
    props = {
        "WINDOWS/EDITIONID": image.edition_id,
        "WINDOWS/ARCH": str(image.arch),
        "WINDOWS/INSTALLATIONTYPE": image.installation_type,
        "WINDOWS/VERSION/MAJOR": str(image.major),
        "WINDOWS/VERSION/MINOR": str(image.minor),
        "WINDOWS/VERSION/BUILD": str(image.build),
        "WINDOWS/VERSION/SPBUILD": "1",
        "WINDOWS/PRODUCTNAME": "Microsoft® Windows® Operating System",
        "WINDOWS/LANGUAGES/DEFAULT": image.languages[0],
        **image.extra,
    }
    args: list[str] = ["--flags", image.edition_id]
    for key, value in props.items():
        args += ["--image-property", f"{key}={value}"]
    for n, lang in enumerate(image.languages, start=1):
        args += ["--image-property", f"WINDOWS/LANGUAGES/LANGUAGE[{n}]={lang}"]
    return args


def build_wim(out: Path, images: Sequence[FakeImage], *, esd: bool = False) -> Path:
    """A real WIM (LZX) or, with ``esd``, a solid LZMS archive like Microsoft's install.esd."""
    tree = out.parent / f"{out.name}.tree"
    (tree / "Windows" / "System32").mkdir(parents=True, exist_ok=True)
    (tree / "Windows" / "System32" / "ntoskrnl.exe").write_bytes(b"MZ" + b"\0" * 510)
    wim = out.with_suffix(".tmp.wim") if esd else out
    for n, image in enumerate(images):
        verb = "wimcapture" if n == 0 else "wimappend"
        cmd = [verb, str(tree), str(wim), image.name]
        if image.description:
            cmd.append(image.description)
        subprocess.run([*cmd, *_properties(image)], check=True, capture_output=True, timeout=60)
    if esd:
        subprocess.run(["wimexport", str(wim), "all", str(out), "--solid"], check=True, capture_output=True, timeout=60)
        wim.unlink()
    return out


def _iso_name(name: str) -> str:
    stem, dot, ext = name.upper().replace("-", "_").replace("$", "_").partition(".")
    return f"{stem[:8]}{dot}{ext[:3]};1"


def build_iso(
    out: Path,
    files: Mapping[str, bytes | Path],
    *,
    volume_id: str = "CCCOMA_X64FRE_EN-US_DV9",
    publisher: str = "MICROSOFT CORPORATION",
    bios: bool = True,
    uefi: bool = True,
    udf_only: bool = True,
) -> Path:
    """An ISO laid out like Microsoft's: files in UDF (and, unless ``udf_only``, Joliet/ISO9660).

    ``files`` maps paths such as ``sources/install.wim`` to contents.  Real Windows ISOs keep
    their files only in UDF, with a README in the ISO9660 tree; ``udf_only`` imitates that.
    """
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, udf="2.60", vol_ident=volume_id[:16], pub_ident_str=publisher)
    iso.pvd.volume_identifier = volume_id.encode().ljust(32)
    iso.add_fp(io.BytesIO(b"This disc contains a UDF file system.\r\n"), 39, "/README.TXT;1", joliet_path="/README.TXT")
    made: set[str] = set()
    all_files: dict[str, bytes | Path] = dict(files)
    boot = b"\xeb\x3c" + b"\0" * 2046
    if bios:
        all_files["boot/etfsboot.com"] = boot
    if uefi:
        all_files["efi/microsoft/boot/efisys.bin"] = boot * 720  # a 1.44 MB FAT image's size
    for rel, content in sorted(all_files.items()):
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in made:
                continue
            made.add(directory)
            iso_dir = "/" + "/".join(p.upper().replace("-", "_")[:8] for p in parts[:depth])
            if udf_only and not _boot_path(rel):
                iso.add_directory(udf_path=f"/{directory}")
            else:
                iso.add_directory(iso_dir, joliet_path=f"/{directory}", udf_path=f"/{directory}")
        data = content.read_bytes() if isinstance(content, Path) else content
        iso_path = "/" + "/".join(p.upper().replace("-", "_")[:8] for p in parts[:-1])
        iso_path = f"{iso_path.rstrip('/')}/{_iso_name(parts[-1])}"
        if udf_only and not _boot_path(rel):
            iso.add_fp(io.BytesIO(data), len(data), udf_path=f"/{rel}")
        else:
            iso.add_fp(io.BytesIO(data), len(data), iso_path, joliet_path=f"/{rel}", udf_path=f"/{rel}")
    if bios:
        iso.add_eltorito(
            "/BOOT/ETFSBOOT.COM;1",
            "/BOOT.CAT;1",
            joliet_bootcatfile="/boot.cat",
            udf_bootcatfile="/boot.cat",
            media_name="noemul",
            boot_load_size=8,
        )
    if uefi:
        iso.add_eltorito(
            "/EFI/MICROSOF/BOOT/EFISYS.BIN;1",
            "/BOOT.CAT;1",
            joliet_bootcatfile="/boot.cat",
            udf_bootcatfile="/boot.cat",
            efi=True,
            media_name="noemul",
            bootable=True,
        )
    iso.write(str(out))
    iso.close()
    return out


def _boot_path(rel: str) -> bool:
    return rel.startswith(("boot/", "efi/"))
