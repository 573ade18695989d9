"""``vmforge doctor``: check the host for what the spec needs; exit 3 when a check fails."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.doctor.model import Report, Status
from vmforge.doctor.runner import run_doctor
from vmforge.errors import ChecksFailed
from vmforge.spec import Overrides, load_spec
from vmforge.ui import Reporter

_LABEL = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}


def render(report: Report, verbose: bool) -> None:
    for result in report.results:
        echo(f"{_LABEL[result.status]:4}  {result.id:24} {result.summary}")
        if verbose or result.status in (Status.WARN, Status.FAIL):
            for line in result.evidence:
                echo(f"{'':30}· {line}")
        if result.fix and result.status in (Status.WARN, Status.FAIL):
            echo(f"{'':30}fix: {result.fix}")
    counts = report.counts()
    echo(f"\n{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed, {counts['skip']} skipped")


@click.command("doctor")
@spec_options
@click.option("--boot-test", is_flag=True, help="Boot the probe guest with the spec's accelerator (up to ~2 min).")
@click.option("-v", "--verbose", is_flag=True, help="Show the evidence of passing and skipped checks too.")
@json_option
def doctor(spec_path: Path | None, sets: tuple[str, ...], boot_test: bool, verbose: bool, as_json: bool) -> None:
    """Check this host for everything the spec needs, and say how to fix what is missing.

    Every check prints pass, warn, fail or skip with its evidence; warnings and failures carry
    the exact fix.  Exit code 3 when any check fails.  Without a spec file the defaults are
    checked (a Windows 11 guest on qemu:///system with KVM).
    """
    spec, _ = load_spec(spec_path, Overrides(sets))
    report = run_doctor(spec, boot_test=boot_test, reporter=Reporter())
    if as_json and not report.failures:
        print_json(report.to_data())
    elif not as_json:
        render(report, verbose)
    if report.failures:
        ids = ", ".join(r.id for r in report.failures)
        raise ChecksFailed(
            f"{len(report.failures)} check{'s' if len(report.failures) > 1 else ''} failed: {ids}",
            hint="apply the fixes shown for each failed check, then run 'vmforge doctor' again",
            report=report.to_data(),
        )
