"""The image store: read-only base images that linked clones stand on.

Layout (one image)::

    <pool dir>/vmforge-image-<id16>.qcow2      the base disk, a standalone qcow2, mode 0444
    $STATE/images/<id>/image.json              what it is: id, inputs, disk key and sha256, ...
    $STATE/images/<id>/nvram.fd                UEFI variable store the clones start from
    $STATE/images/<id>/tpm/                    swtpm state the clones start from

``<id>`` is the input hash of ``vmforge image build`` (vmforge.images.inputs) or, for
``vmforge image capture``, the sha256 of the captured disk.  The base disk is never attached
writable: clones are qcow2 overlays on it.  An image is *referenced* while any volume in its
pool has it as backing file or any VM's state names it; ``rm`` refuses those, ``prune`` removes
only unreferenced ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from vmforge.errors import UsageError, VmforgeError
from vmforge.images.files import remove_state
from vmforge.libvirt_conn import libvirt_errors
from vmforge.paths import state_root
from vmforge.state import VmDir, list_vm_dirs, write_atomic
from vmforge.storage import lookup_pool, lookup_volume

IMAGE_KEY = "image"  # VmState.extra: the image a clone stands on
ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Image:
    id: str
    label: str
    created: str
    os: str
    pool: str
    volume: str
    key: str  # the base disk's path
    disk_sha256: str
    size: int
    source_vm: str | None
    generalized: bool
    nvram: bool
    tpm: bool
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)


def images_root(root: Path | None = None) -> Path:
    return (root or state_root()) / "images"


def image_dir(image_id: str, root: Path | None = None) -> Path:
    return images_root(root) / image_id


def volume_name(image_id: str) -> str:
    return f"vmforge-image-{image_id[:16]}.qcow2"


def save_image(image: Image, root: Path | None = None) -> None:
    text = json.dumps(image.to_data(), indent=2, sort_keys=True) + "\n"
    write_atomic(image_dir(image.id, root) / "image.json", text.encode(), 0o644)


def list_images(root: Path | None = None) -> list[Image]:
    base = images_root(root)
    if not base.is_dir():
        return []
    images = []
    for meta in sorted(base.glob("*/image.json")):
        try:
            images.append(Image(**json.loads(meta.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, TypeError) as exc:
            raise VmforgeError(f"{meta} is damaged ({exc})", hint=f"remove {meta.parent} by hand") from None
    return sorted(images, key=lambda image: image.created)


def find_image(ref: str, root: Path | None = None) -> Image:
    """An image by id, unique id prefix (at least 8 digits) or label (the newest of that label)."""
    images = list_images(root)
    by_id = [image for image in images if ID.match(ref) and image.id.startswith(ref)]
    if len(by_id) == 1:
        return by_id[0]
    by_label = [image for image in images if image.label == ref]
    if by_label:
        return by_label[-1]
    hint = "'vmforge image list' shows the images" if not by_id else "give more digits of the id"
    raise UsageError(f"no single image matches '{ref}'", hint=hint)


def nvram_copy(image: Image, root: Path | None = None) -> Path | None:
    return image_dir(image.id, root) / "nvram.fd" if image.nvram else None


def tpm_copy(image: Image, root: Path | None = None) -> Path | None:
    return image_dir(image.id, root) / "tpm" if image.tpm else None


def referencing(conn: Any, image: Image, root: Path | None = None) -> list[str]:
    """Who stands on ``image``: volumes backed by it in its pool, and VMs whose state names it."""
    users: list[str] = []
    pool = lookup_pool(conn, image.pool)
    if pool is not None:
        with libvirt_errors(f"listing volumes of pool {image.pool}"):
            if pool.isActive():
                pool.refresh(0)
                for volume in pool.listAllVolumes(0):
                    backing = etree.fromstring(volume.XMLDesc(0).encode()).findtext("backingStore/path")
                    if backing == image.key:
                        users.append(f"volume {image.pool}/{volume.name()}")
    for name in list_vm_dirs(root):
        state = VmDir(name, root=root).load()
        if state is not None and state.extra.get(IMAGE_KEY) == image.id:
            users.append(f"VM {name}")
    return users


def remove_image(conn: Any, image: Image, root: Path | None = None) -> list[str]:
    """Delete an unreferenced image (its disk only when the volume is still the recorded one)."""
    users = referencing(conn, image, root)
    if users:
        raise UsageError(
            f"image {image.id[:16]} ({image.label}) is in use by {', '.join(users)}",
            hint="destroy those clones first ('vmforge destroy NAME'), then remove the image",
        )
    removed: list[str] = []
    pool = lookup_pool(conn, image.pool)
    volume = lookup_volume(pool, image.volume) if pool is not None else None
    if volume is not None:
        with libvirt_errors(f"deleting image volume {image.volume}"):
            if str(volume.key()) == image.key:
                volume.delete(0)
                removed.append(f"volume {image.pool}/{image.volume}")
    remove_state(image_dir(image.id, root))
    removed.append(f"image {image.id[:16]} ({image.label})")
    return removed


def prune_images(conn: Any, root: Path | None = None) -> tuple[list[str], list[str]]:
    """Remove every unreferenced image; returns (removed, kept-with-reason)."""
    removed: list[str] = []
    kept: list[str] = []
    for image in list_images(root):
        users = referencing(conn, image, root)
        if users:
            kept.append(f"image {image.id[:16]} ({image.label}): used by {', '.join(users)}")
        else:
            removed.extend(remove_image(conn, image, root))
    return removed, kept
