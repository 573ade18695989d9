"""What a check reports: a status, the evidence it saw, and the exact fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    id: str  # stable, dotted: "iommu.enabled"
    status: Status
    summary: str  # one line: what was found
    evidence: tuple[str, ...] = ()  # what was read, where
    fix: str | None = None  # the exact command or setting; None when nothing is to be done

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


def passed(check_id: str, summary: str, *evidence: str) -> CheckResult:
    return CheckResult(check_id, Status.PASS, summary, tuple(evidence))


def warned(check_id: str, summary: str, fix: str, *evidence: str) -> CheckResult:
    return CheckResult(check_id, Status.WARN, summary, tuple(evidence), fix)


def failed(check_id: str, summary: str, fix: str, *evidence: str) -> CheckResult:
    return CheckResult(check_id, Status.FAIL, summary, tuple(evidence), fix)


def skipped(check_id: str, reason: str, *evidence: str) -> CheckResult:
    return CheckResult(check_id, Status.SKIP, reason, tuple(evidence))


@dataclass(frozen=True)
class Report:
    results: tuple[CheckResult, ...]

    @classmethod
    def of(cls, results: Iterable[CheckResult]) -> Report:
        return cls(tuple(results))

    def with_results(self, more: Iterable[CheckResult]) -> Report:
        return Report((*self.results, *more))

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.FAIL]

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for r in self.results if r.status is s) for s in Status}

    def get(self, check_id: str) -> CheckResult:
        for result in self.results:
            if result.id == check_id:
                return result
        raise KeyError(check_id)

    def to_data(self) -> dict[str, Any]:
        return {
            "ok": not self.failures,
            "counts": self.counts(),
            "checks": [r.to_data() for r in self.results],
        }
