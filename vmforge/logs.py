"""Logging with secrets redacted.

Every secret vmforge handles (passwords, credentials) is registered here the moment it is made
or read; a filter on every handler replaces it with ``********`` before anything is written.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

_lock = threading.Lock()
_secrets: set[str] = set()
REDACTED = "********"
LOGGER_NAME = "vmforge"


def register_secret(value: str) -> None:
    """Never let ``value`` reach a log line.  Very short values are ignored (they'd mask words)."""
    if value and len(value) >= 4 and value != "generate":
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_logging(debug: bool) -> None:
    """stderr gets warnings (everything with --debug); tracebacks only with --debug."""
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_vmforge_console", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._vmforge_console = True  # type: ignore[attr-defined]
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)


def add_file_log(path: Path) -> logging.Handler:
    """Also log everything (debug level, redacted) to ``path``; returns the handler to remove."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    return handler
