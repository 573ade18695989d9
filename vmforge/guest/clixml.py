"""PowerShell's CLIXML error stream, made readable.

A non-interactive ``powershell.exe`` whose stderr is not a console writes its error records as
serialized objects: a ``#< CLIXML`` line and an ``<Objs>`` document whose ``<S S="Error">``
strings carry the text, with control characters escaped as ``_xHHHH_``.  This module turns that
into the plain lines a user would have seen in a console.
"""

from __future__ import annotations

import re

from lxml import etree

MARKER = b"#< CLIXML"
_ESCAPE_RE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_NS = "{http://schemas.microsoft.com/powershell/2004/04}"


def _unescape(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def decode_stderr(data: bytes) -> bytes:
    """``data`` with any CLIXML documents replaced by their error text (UTF-8); other bytes kept."""
    start = data.find(MARKER)
    if start < 0:
        return data
    before = data[:start]
    rest = data[start + len(MARKER) :].lstrip(b"\r\n")
    end = rest.find(b"</Objs>")
    if end < 0:
        return data
    document, after = rest[: end + len(b"</Objs>")], rest[end + len(b"</Objs>") :]
    try:
        root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return data
    lines = [_unescape(node.text or "") for node in root.iter(f"{_NS}S") if node.get("S") == "Error"]
    text = "".join(lines).replace("\r\n", "\n").rstrip("\n")
    decoded = before + (text + "\n").encode("utf-8") if text else before
    return decoded + decode_stderr(after.lstrip(b"\r\n"))


def first_error_line(stderr: bytes, limit: int = 300) -> str:
    """The first non-empty line of (decoded) stderr, for one-line error messages."""
    for line in decode_stderr(stderr).decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""
