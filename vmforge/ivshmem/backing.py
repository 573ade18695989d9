"""Open and map the memory behind the ivshmem device.

Two kinds of backing exist on a host: a file in /dev/shm (what QEMU's ivshmem-plain and the
ivshmem server use) and the kvmfr kernel module's char device (/dev/kvmfrN).  A VM started before
the kvmfr module loaded turns /dev/kvmfrN into a plain file that nobody else maps, so a path
under /dev that is not a char device is refused.  Inside a Linux guest the same code maps
/sys/bus/pci/devices/<addr>/resource2 (BAR2), whose size sysfs reports in st_size.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import stat
from pathlib import Path

from vmforge.ivshmem.errors import ChannelError


class SharedMemory:
    """A shared mapping; ``buf`` is a writable memoryview over all of it (zero-copy access)."""

    def __init__(self, path: Path, size: int, mapping: mmap.mmap) -> None:
        self.path = path
        self.size = size
        self._mmap = mapping
        self.buf = memoryview(mapping)
        self._u64: dict[int, ctypes.c_uint64] = {}

    def u64(self, offset: int) -> ctypes.c_uint64:
        """An aligned 64-bit cell: loads and stores through it are single machine accesses.

        ``struct.pack_into`` copies through a temporary buffer and gives no such promise, so
        every index, sequence number and heartbeat goes through these cells.
        """
        if offset % 8:
            raise ValueError(f"offset {offset} is not 8-byte aligned")
        cell = self._u64.get(offset)
        if cell is None:
            cell = ctypes.c_uint64.from_buffer(self._mmap, offset)
            self._u64[offset] = cell
        return cell

    def u32(self, offset: int) -> ctypes.c_uint32:
        if offset % 4:
            raise ValueError(f"offset {offset} is not 4-byte aligned")
        return ctypes.c_uint32.from_buffer(self._mmap, offset)

    def close(self) -> None:
        self._u64.clear()
        self.buf.release()
        # A ctypes cell or a caller's memoryview may still export the buffer; the mapping then
        # goes away with the last reference instead.
        with contextlib.suppress(BufferError):
            self._mmap.close()

    def __enter__(self) -> SharedMemory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def create_shm_file(path: Path, size: int, mode: int = 0o660) -> None:
    """Create (or resize) a regular backing file, as QEMU or the ivshmem server would."""
    if size <= 0 or size & (size - 1):
        raise ChannelError(f"shared-memory size {size} is not a power of two", hint="use 'auto' or e.g. 64MiB")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)


def open_shared_memory(path: Path, size: int | None = None) -> SharedMemory:
    """Map ``path`` read-write.  ``size`` is required for char devices; files report their own."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise ChannelError(
            f"shared-memory backing {path} does not exist",
            hint="start the VM (QEMU creates /dev/shm/NAME) or check the ivshmem name",
        ) from None
    except PermissionError:
        raise ChannelError(
            f"no permission to open {path} read-write",
            hint="make the file 0660 with a group you are in (e.g. a tmpfiles rule), or run as its owner",
        ) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode):
            if size is None:
                raise ChannelError(
                    f"{path} is a char device (kvmfr); its size must be given",
                    hint="pass the ivshmem size from the VM's plan",
                )
            length = size
        elif stat.S_ISREG(info.st_mode):
            if _is_device_path(path):
                raise ChannelError(
                    f"{path} is a regular file, not the kvmfr char device",
                    hint="load the kvmfr module before starting the VM, remove the stale file and restart the VM",
                )
            length = info.st_size
            if size is not None and size > length:
                raise ChannelError(f"{path} holds {length} bytes, {size} were expected")
            if size is not None:
                length = size
        else:
            raise ChannelError(f"{path} is neither a regular file nor a char device")
        if length <= 0:
            raise ChannelError(f"{path} is empty", hint="the VM (or ivshmem server) has not sized it yet")
        try:
            mapping = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise ChannelError(f"cannot map {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return SharedMemory(path, length, mapping)


def _is_device_path(path: Path) -> bool:
    resolved = path.absolute()
    return resolved.parts[:2] == ("/", "dev") and not (len(resolved.parts) > 2 and resolved.parts[2] == "shm")
