"""Jinja rendering for answer files, guest scripts and starter files.

StrictUndefined: a variable a template uses but nobody passed is an error, never an empty
string in an answer file.  The environment is sandboxed (templates may come from users).
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from vmforge.errors import VmforgeError
from vmforge.resources import DataFolder, data_dir


def environment(folder: DataFolder = DataFolder.TEMPLATES) -> jinja2.Environment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(data_dir(folder))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(name: str, folder: DataFolder = DataFolder.TEMPLATES, /, **context: Any) -> str:
    env = environment(folder)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise VmforgeError(f"template {folder.value}/{name} not found", hint="reinstall vmforge") from None
    except jinja2.UndefinedError as exc:
        raise VmforgeError(
            f"template {folder.value}/{name}: {exc.message}",
            hint="the template uses a value vmforge did not provide; this is a vmforge bug",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise VmforgeError(
            f"template {folder.value}/{name} line {exc.lineno}: {exc.message}",
            hint="fix the template's syntax",
        ) from None
