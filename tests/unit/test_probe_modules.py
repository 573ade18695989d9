"""Module load order from modules.dep (the shape busybox depmod writes for Debian's kernel)."""

from __future__ import annotations

import pytest

from vmforge.errors import VmforgeError
from vmforge.probe.image import (
    MODULE_SIG_MAGIC,
    load_order,
    module_name,
    module_table,
    parse_modules_dep,
    strip_module_signature,
)

# Lines as busybox depmod wrote them for linux-image-6.1.0-56-amd64.
MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/cdrom/cdrom.ko \
kernel/drivers/scsi/scsi_common.ko
kernel/lib/crc-itu-t.ko:
kernel/fs/udf/udf.ko: kernel/drivers/cdrom/cdrom.ko kernel/lib/crc-itu-t.ko
"""


def test_dependencies_load_first_and_once() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    order = load_order(deps, ["virtio_pci", "virtio_console", "sr_mod", "udf"])
    names = [module_name(p) for p in order]
    assert len(names) == len(set(names))
    for module, needs in deps.items():
        if module in order:
            for dep in needs:
                assert order.index(dep) < order.index(module), (dep, module)
    assert names[-1] == "udf"
    assert "crc_itu_t" in names  # dash and underscore are the same module name


def test_module_table_gives_each_trigger_its_groups_whole_closure_in_order() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    groups = [(("always",), ("virtio_console",)), (("scsi=5", "arg=vmforge.cd"), ("sr_mod", "udf"))]
    lines = [line.split() for line in module_table(deps, groups)]
    assert all(len(line) == 3 for line in lines)  # TRIGGER NAME PATH, as probe-init reads them
    by_trigger: dict[str, list[str]] = {}
    for trigger, name, path in lines:
        assert name == module_name(path)
        by_trigger.setdefault(trigger, []).append(path)
    assert [module_name(p) for p in by_trigger["always"]] == ["virtio_ring", "virtio", "virtio_console"]
    # Each trigger of a group carries the same closure: cdrom once, before both users.
    assert by_trigger["scsi=5"] == by_trigger["arg=vmforge.cd"]
    names = [module_name(p) for p in by_trigger["scsi=5"]]
    assert names.count("cdrom") == 1 and names.index("cdrom") < names.index("sr_mod") < names.index("udf")
    assert names.index("crc_itu_t") < names.index("udf")


def test_a_trigger_with_a_space_is_refused() -> None:
    with pytest.raises(VmforgeError, match="single word"):
        module_table(parse_modules_dep(MODULES_DEP), [(("pci=1af4:1001 x",), ("virtio_console",))])


def test_unknown_module_is_an_error() -> None:
    with pytest.raises(VmforgeError, match="not in the kernel package"):
        load_order(parse_modules_dep(MODULES_DEP), ["ahci"])


def test_dependency_loop_is_an_error() -> None:
    with pytest.raises(VmforgeError, match="loop"):
        load_order({"a.ko": ["b.ko"], "b.ko": ["a.ko"]}, ["a"])


def test_module_name_strips_compression_suffixes() -> None:
    assert module_name("kernel/lib/crc-itu-t.ko.xz") == "crc_itu_t"


def test_module_signature_is_cut_off_exactly() -> None:
    body = b"\x7fELF" + bytes(range(256)) * 4
    signature = b"\x30\x82" + b"S" * 510
    info = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + len(signature).to_bytes(4, "big")
    assert strip_module_signature(body + signature + info + MODULE_SIG_MAGIC) == body
    assert strip_module_signature(body) == body


def test_malformed_signature_trailer_is_an_error() -> None:
    info = bytes(8) + (10_000).to_bytes(4, "big")
    with pytest.raises(VmforgeError, match="signature trailer"):
        strip_module_signature(b"short" + info + MODULE_SIG_MAGIC)
