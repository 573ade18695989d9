"""Golden images, linked clones, offline snapshots and reprovisioning (see docs/images.md)."""
