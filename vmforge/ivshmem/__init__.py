"""The host side of the vmforge ivshmem channel (docs/ivshmem-protocol.md is the contract).

Modules: ``layout`` (offsets, sizes, versions), ``backing`` (open and map /dev/shm/NAME or a
kvmfr char device), ``ring`` (SPSC message rings), ``frames`` (seqlock triple-buffered frames),
``session`` (handshake, heartbeat, peer loss), ``doorbell`` and ``server`` (QEMU's
ivshmem-server protocol), ``echo`` (the echo peer and ``channel check``), ``bench``.
"""
