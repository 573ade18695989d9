"""sha256 of large files, cached by (path, size, mtime, inode) so a 6 GB ISO is hashed once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vmforge.errors import VmforgeError
from vmforge.paths import cache_home
from vmforge.state import write_atomic

CHUNK = 4 * 1024**2
CACHE_FILE = "sha256.json"


def _key(path: Path) -> tuple[str, str]:
    st = path.stat()
    resolved = str(path.resolve())
    return resolved, f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _cache_path(cache_dir: Path | None) -> Path:
    return (cache_dir or cache_home()) / CACHE_FILE


def _load(cache: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: Path, cache_dir: Path | None = None) -> str | None:
    """The cached digest if the file is unchanged since it was hashed, else None."""
    resolved, stamp = _key(path)
    entry = _load(_cache_path(cache_dir)).get(resolved)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry.get("sha256")
    return None


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of ``path``, from the cache when the file's (size, mtime, inode) are unchanged."""
    cached = cached_sha256(path, cache_dir)
    if cached:
        return cached
    resolved, stamp = _key(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    cache = _cache_path(cache_dir)
    data = _load(cache)
    data[resolved] = {"stamp": stamp, "sha256": value}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    return value


def verify_sha256(path: Path, expected: str, cache_dir: Path | None = None) -> str:
    actual = file_sha256(path, cache_dir)
    if actual != expected.lower():
        raise VmforgeError(
            f"windows.iso_sha256 mismatch for {path}: expected {expected.lower()}, the file has {actual}",
            hint="the ISO is damaged or a different file; download it again, or fix windows.iso_sha256",
        )
    return actual
