"""vmforge: unattended Windows VMs on QEMU/KVM through libvirt."""

__version__ = "0.1.0"
