"""The virtual CPU: mode (host-passthrough, maximum, host-model or a named model) and topology.

A named model may carry CPU features the QEMU way: ``qemu64,+rdrand,-svm`` is the ``qemu64``
model with ``rdrand`` required and ``svm`` disabled (libvirt ``<feature policy=...>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmforge.domain.xmlutil import Element, sub

MODES = ("host-passthrough", "host-model", "maximum")
_FLAG_RE = re.compile(r"^[+-][a-z0-9][a-z0-9_.-]*$")


def split_model(mode: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``MODEL,+feat,-feat`` -> (MODEL, ((policy, feature), ...)); ValueError on a bad flag."""
    model, *flags = mode.split(",")
    features: list[tuple[str, str]] = []
    for flag in flags:
        if not _FLAG_RE.match(flag):
            raise ValueError(f"CPU feature '{flag}' is not +name or -name")
        features.append(("require" if flag[0] == "+" else "disable", flag[1:]))
    if features and model in MODES:
        raise ValueError(f"CPU features go with a named model, not with '{model}'")
    return model, tuple(features)


@dataclass(frozen=True)
class Cpu:
    mode: str  # one of MODES, or a QEMU model name with optional ,+feature / ,-feature flags
    vcpus: int

    def element(self, parent: Element) -> Element:
        if self.mode in MODES:
            cpu = sub(
                parent, "cpu", mode=self.mode, check="none", migratable="on" if self.mode != "host-model" else None
            )
        else:
            model, features = split_model(self.mode)
            cpu = sub(parent, "cpu", mode="custom", match="exact", check="none")
            sub(cpu, "model", model, fallback="forbid")
            for policy, name in features:
                sub(cpu, "feature", policy=policy, name=name)
        sub(cpu, "topology", sockets=1, dies=1, cores=self.vcpus, threads=1)
        return cpu
