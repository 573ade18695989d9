"""Facts about the host machine vmforge runs on or drives (sysfs, libvirt capabilities)."""
