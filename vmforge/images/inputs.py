"""The name of a golden image: a content hash of every non-secret input that shapes its disk.

Inputs: the installer ISO's sha256 (from the media checksum cache, keyed by path, size, mtime and
inode, so a 6 GB ISO is hashed once), the edition, the answer file as rendered **with a fixed
placeholder instead of the password** (the product key enters only as its own sha256), the
file hashes of every package folder, vmforge's templates and answer-file templates, the guard
profile, the disk-shaping part of the plan (firmware, TPM, disk bus/format/size, machine) and
vmforge's version.  Secrets never enter it: two builds that differ only in their password hit
the same image.  Building again with equal inputs finds the image and boots nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vmforge import __version__
from vmforge.images.files import tree_digest
from vmforge.media.build import prepare_answer
from vmforge.media.checksum import file_sha256
from vmforge.plan import Plan
from vmforge.resources import DataFolder, data_dir
from vmforge.spec import Spec, stable_hash

# Rendered into the answer file in place of the real password when hashing.
PASSWORD_PLACEHOLDER = "vmforge-image-input-placeholder-0"  # noqa: S105 - a placeholder, never a credential
TEMPLATE_FOLDERS = (DataFolder.TEMPLATES, DataFolder.ANSWER_FILES)


@dataclass(frozen=True)
class ImageInputs:
    os: str
    iso_sha256: str | None
    edition: str | None
    answer_file: str | None  # rendered with PASSWORD_PLACEHOLDER
    product_key_sha256: str | None
    packages: Mapping[str, str] = field(default_factory=dict)  # name -> digest of its files
    templates: str = ""
    guard_profile: Mapping[str, Any] = field(default_factory=dict)
    machine: Mapping[str, Any] = field(default_factory=dict)
    vmforge_version: str = __version__

    def to_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["packages"] = dict(self.packages)
        data["guard_profile"] = dict(self.guard_profile)
        data["machine"] = dict(self.machine)
        return data


def input_hash(inputs: ImageInputs) -> str:
    return stable_hash(inputs.to_data())


def templates_digest() -> str:
    """Every file of vmforge's template folders (a local edit changes the images built)."""
    return stable_hash({folder.value: tree_digest(data_dir(folder)) for folder in TEMPLATE_FOLDERS})


def package_digests(spec: Spec) -> dict[str, str]:
    result: dict[str, str] = {}
    for ref in spec.packages:
        folder = ref.path if ref.path is not None else data_dir(DataFolder.GUEST_DRIVERS) / ref.name
        result[ref.name] = tree_digest(Path(folder)) if Path(folder).is_dir() else "missing"
    return result


def machine_inputs(plan: Plan) -> dict[str, Any]:
    return {
        "firmware": plan.firmware.value,
        "tpm": plan.tpm,
        "machine": plan.machine,
        "family": plan.family.value if plan.family is not None else None,
        "disk": {"bus": plan.disk.bus, "format": plan.disk.format, "size": plan.disk.size},
    }


def spec_inputs(
    spec: Spec,
    plan: Plan,
    *,
    iso_sha256: str | None,
    answer_file: str | None,
    product_key: str | None = None,
) -> ImageInputs:
    """Gather the inputs of ``spec``; the caller renders the answer file with
    :data:`PASSWORD_PLACEHOLDER` (the create pipeline's renderer) and looks up the ISO digest."""
    guards = spec.guards.model_dump(mode="json")
    return ImageInputs(
        os=spec.os.value,
        iso_sha256=iso_sha256,
        edition=None if spec.windows.edition is None else str(spec.windows.edition),
        answer_file=answer_file,
        product_key_sha256=hashlib.sha256(product_key.encode()).hexdigest() if product_key else None,
        packages=package_digests(spec),
        templates=templates_digest(),
        guard_profile=guards,
        machine=machine_inputs(plan),
    )


def windows_inputs(spec: Spec) -> ImageInputs:
    """The inputs of a Windows spec: ISO digest, and the answer file vmforge would render."""
    prepared = prepare_answer(spec, PASSWORD_PLACEHOLDER)
    text = prepared.answer.text
    key = prepared.answer.product_key
    if key:
        text = text.replace(key, "product-key")
    iso = spec.windows.iso
    return spec_inputs(
        spec,
        prepared.plan,
        iso_sha256=file_sha256(iso) if iso is not None else None,
        answer_file=text,
        product_key=key,
    )
