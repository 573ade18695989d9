"""Guest packages: drivers and apps copied into a guest, installed, verified, recorded."""
