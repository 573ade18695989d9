"""Shared-memory areas for the ivshmem tests: real mmap'ed files in tmp_path (or /dev/shm)."""

from __future__ import annotations

from pathlib import Path

from vmforge.ivshmem.backing import SharedMemory, create_shm_file, open_shared_memory

MiB = 1024**2


def make_shm(path: Path, size: int = 8 * MiB) -> SharedMemory:
    create_shm_file(path, size)
    return open_shared_memory(path)


class FakeClock:
    """A clock tests move by hand (determinism by injection)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)
