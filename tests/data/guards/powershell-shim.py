"""Stands in for powershell.exe behind Debian's host qemu-ga in the guard round-trip test.

It is NOT PowerShell: it answers the few commands vmforge sends, with answers prepared by the
test.  ``-EncodedCommand``: the make-directory and file-hash scripts (decoded exactly as
PowerShell would: base64 of UTF-16LE).  ``-File PATH``: a guard script the host copied in; its
``$Guard``/``$Mode`` lines pick the prepared answer ``<guard>-<mode>.out`` (and optional
``.err``/``.rc``) in $VMFORGE_SHIM_ANSWERS.  Every guard script run is logged to runs.log there.
"""

import base64
import hashlib
import os
import re
import sys
from pathlib import Path

args = sys.argv[1:]
answers = Path(os.environ["VMFORGE_SHIM_ANSWERS"])
if "-EncodedCommand" in args:
    script = base64.b64decode(args[args.index("-EncodedCommand") + 1]).decode("utf-16-le")
    match = re.search(r"^\$Path = '((?:[^']|'')*)'$", script, re.M)
    if match is None:
        sys.exit(64)
    path = match.group(1).replace("''", "'")
    if "Get-FileHash" in script:
        sys.stdout.write(hashlib.sha256(Path(path).read_bytes()).hexdigest())
    elif "CreateDirectory" in script:
        os.makedirs(path, exist_ok=True)
    else:
        sys.exit(64)
    sys.exit(0)
if "-File" in args:
    path = args[args.index("-File") + 1]
    text = Path(path).read_text(encoding="utf-8-sig")
    guard = re.search(r"^\$Guard = '([^']+)'$", text, re.M).group(1)
    mode = re.search(r"^\$Mode = '([^']+)'$", text, re.M).group(1)
    with (answers / "runs.log").open("a") as log:
        log.write(f"{guard} {mode} {path}\n")
    base = answers / f"{guard}-{mode}"
    sys.stdout.buffer.write(base.with_suffix(".out").read_bytes())
    err = base.with_suffix(".err")
    if err.exists():
        sys.stderr.buffer.write(err.read_bytes())
    rc = base.with_suffix(".rc")
    sys.exit(int(rc.read_text()) if rc.exists() else 0)
sys.exit(64)
