"""The host side of the vmforge ivshmem channel (docs/ivshmem-protocol.md is the contract).

Modules: ``layout`` (offsets, sizes, versions), ``backing`` (map /dev/shm/NAME or a kvmfr char
device), ``ring`` (SPSC message rings), ``frames`` (seqlock triple-buffered frames), ``session``
(handshake, heartbeat, peer loss), ``messages`` (message types, the pattern frame), ``doorbell``
and ``server`` (QEMU's ivshmem-server protocol), ``server_daemon`` (the server beside a VM),
``echo`` (the Python echo peer and the host side of ``channel check``), ``bench``,
``guest_peer`` (builds the C guest peer in ``guest/``), ``spawn`` (helper processes).
"""
