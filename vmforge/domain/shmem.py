"""ivshmem: shared memory between host and guest (/dev/shm/NAME), plain or with doorbell."""

from __future__ import annotations

from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub

MiB = 1024**2


@dataclass(frozen=True)
class Shmem:
    name: str
    size: int  # bytes, a power of two (for doorbell: the size the ivshmem server creates)
    doorbell: bool = False
    server_socket: str | None = None  # doorbell only
    vectors: int = 1

    def element(self, parent: Element) -> Element:
        shmem = sub(parent, "shmem", name=self.name)
        sub(shmem, "model", type="ivshmem-doorbell" if self.doorbell else "ivshmem-plain")
        if not self.doorbell:
            # With a doorbell the server owns the memory and its size (libvirt refuses <size>).
            sub(shmem, "size", str(self.size // MiB), unit="M")
        else:
            sub(shmem, "server", path=self.server_socket)
            sub(shmem, "msi", vectors=self.vectors, ioeventfd="on")
        return shmem
