"""``vmforge probe``: boot the probe guest on a spec's hardware and report what it sees."""

from __future__ import annotations

from pathlib import Path

import click

from vmforge.cli.common import echo, json_option, print_json, spec_options
from vmforge.errors import UsageError
from vmforge.probe.image import ensure_probe_image
from vmforge.probe.run import probe_spec
from vmforge.probe.specs import BUILTIN_SPECS, recorded_spec
from vmforge.spec import Overrides, load_spec
from vmforge.ui import Reporter


@click.command("probe")
@click.argument("name", required=False)
@spec_options
@click.option(
    "--builtin",
    type=click.Choice(sorted(BUILTIN_SPECS)),
    default=None,
    help="Use a built-in spec (the same ones as 'vmforge create --builtin').",
)
@click.option(
    "--answer-iso",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Attach this ISO as the answer media CD (default: the VM's built answer media, if the spec has one).",
)
@click.option("--keep", is_flag=True, help="Leave the probe domain running (remove it later with 'vmforge destroy').")
@json_option
def probe(  # noqa: PLR0917 - click passes the options
    name: str | None,
    spec_path: Path | None,
    sets: tuple[str, ...],
    builtin: str | None,
    answer_iso: Path | None,
    keep: bool,
    as_json: bool,
) -> None:
    """Boot a tiny Linux guest with the hardware the spec's plan gives (direct kernel boot, BIOS)
    and report what it sees: PCI devices, memory, CPUs, files on each CD, the ivshmem round
    trip, boot-to-agent time.  NAME probes an existing vmforge VM with the spec it was created
    with (and its built answer media); otherwise --spec FILE or --builtin.  The probe is its own
    domain (NAME-probe): the VM itself is not touched.  The probe domain and everything made for
    it are removed afterwards, also on errors and Ctrl-C."""
    given = [label for label, value in (("NAME", name), ("--spec", spec_path), ("--builtin", builtin)) if value]
    if len(given) > 1:
        raise UsageError(
            f"give one of NAME, --spec and --builtin, not {' and '.join(given)}",
            hint="vmforge probe NAME | vmforge probe --spec F | vmforge probe --builtin probe-demo",
        )
    if name is not None:
        spec, state = recorded_spec(name, Overrides(sets))
        recorded_answer = state.extra.get("answer_iso")
        if answer_iso is None and isinstance(recorded_answer, str) and Path(recorded_answer).is_file():
            answer_iso = Path(recorded_answer)
    else:
        spec, _source = load_spec(BUILTIN_SPECS[builtin] if builtin else spec_path, Overrides(sets))
    reporter = Reporter()
    with reporter.step("Building or reusing the probe image"):
        image = ensure_probe_image()
    report = probe_spec(spec, image, reporter=reporter, answer_iso=answer_iso, keep=keep)
    if as_json:
        print_json(report.to_data())
    else:
        for line in report.lines():
            echo(line)
    if not report.ok:
        raise click.exceptions.Exit(1)
