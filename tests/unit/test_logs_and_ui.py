from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from vmforge.logs import add_file_log, get_logger, redact, register_secret
from vmforge.ui import Reporter


def test_registered_secrets_are_redacted_in_file_logs(tmp_path: Path) -> None:
    register_secret("Hunter2-secret-xyz")
    path = tmp_path / "log.txt"
    handler = add_file_log(path)
    try:
        get_logger("test").warning("connecting with password %s", "Hunter2-secret-xyz")
    finally:
        logging.getLogger("vmforge").removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert "Hunter2-secret-xyz" not in text
    assert "connecting with password ********" in text


def test_short_values_are_not_treated_as_secrets() -> None:
    register_secret("ab")
    assert redact("about") == "about"


def test_reporter_plain_lines_with_timing() -> None:
    ticks = iter([0.0, 1.25, 2.0, 2.5])
    out = io.StringIO()
    rep = Reporter(out, live=False, clock=lambda: next(ticks))
    with rep.step("Building answer media"):
        rep.info("writing autounattend.xml")
    with pytest.raises(RuntimeError), rep.step("Defining domain"):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines() == [
        "==> Building answer media",
        "  writing autounattend.xml",
        "<== Building answer media: done in 1.2s",
        "==> Defining domain",
        "<== Defining domain: failed after 0.5s",
    ]


def test_reporter_redacts() -> None:
    register_secret("S3cret-Value-42")
    out = io.StringIO()
    Reporter(out, live=False).info("using S3cret-Value-42")
    assert "S3cret-Value-42" not in out.getvalue()
