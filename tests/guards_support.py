"""Shared pieces of the guard tests: representative plans and the PowerShell/C# parsers."""

from __future__ import annotations

from typing import Any

import tree_sitter_c_sharp
from tree_sitter import Language, Parser

from vmforge.plan import GuardsPlan, Plan, resolve_plan
from vmforge.spec import parse_spec

CSHARP = Parser(Language(tree_sitter_c_sharp.language()))


def guard_spec_data(**guards: Any) -> dict[str, Any]:
    return {
        "vm": {"name": "vmft-grd-vm"},
        "windows": {"family": "11", "edition": "Windows 11 Enterprise", "admin_user": "vmforge"},
        "guards": {"profile": "compositor", **guards},
    }


def guard_plan(**guards: Any) -> Plan:
    return resolve_plan(parse_spec(guard_spec_data(**guards), label="test"))


def guards_of(plan: Plan) -> GuardsPlan:
    assert plan.guards is not None
    return plan.guards
