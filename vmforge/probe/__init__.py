"""The probe guest: a tiny Linux (Debian kernel + busybox + qemu-ga) that boots in seconds."""
