"""The CI examples in docs/ci/ stay true: every ``vmforge`` command line in them parses against
the real CLI (command names, options, argument counts), the spec they use loads, and each job
does what docs/images.md says (build, clone, smoke check, destroy)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.conftest import REPO
from vmforge.cli import cli
from vmforge.spec import load_spec

CI = REPO / "docs" / "ci"
STAGES = ("image build", "clone", "guest exec", "destroy")


def github_lines(doc: dict[str, Any]) -> list[str]:
    steps = doc["jobs"]["smoke"]["steps"]
    return [line for step in steps if "run" in step for line in step["run"].splitlines()]


def gitlab_lines(doc: dict[str, Any]) -> list[str]:
    return [line for job in doc.values() for key in ("script", "after_script") for line in job.get(key, [])]


EXAMPLES = {"github-actions.yml": github_lines, "gitlab-ci.yml": gitlab_lines}


def shell_words(line: str) -> list[str]:
    """The words the shell passes to vmforge: substitutions become placeholders, redirections go."""
    line = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line)
    line = re.sub(r"\$\{?\w+\}?", "VALUE", line)
    words = shlex.split(line)
    if ">" in words:
        words = words[: words.index(">")]
    return words


def parse(words: list[str]) -> tuple[str, dict[str, Any]]:
    """Resolve the sub-command chain and parse its arguments as click would; runs nothing."""
    command: click.Command = cli
    ctx = command.make_context("vmforge", words[1:])
    path = []
    while isinstance(command, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return " ".join(path), ctx.params


def vmforge_lines(name: str) -> list[list[str]]:
    doc = yaml.safe_load((CI / name).read_text())
    lines = [line.strip() for line in EXAMPLES[name](doc)]
    return [shell_words(line) for line in lines if line.startswith("vmforge ")]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_vmforge_command_line_parses_against_the_real_cli(name: str) -> None:
    commands = vmforge_lines(name)
    assert commands, f"{name} runs no vmforge command"
    seen = []
    for words in commands:
        try:
            path, params = parse(words)
        except click.UsageError as exc:
            pytest.fail(f"{name}: {' '.join(words)!r} does not parse: {exc.format_message()}")
        seen.append(path)
        if params.get("spec_path") is not None:
            assert Path(params["spec_path"]) == Path("ci/golden.toml")
    assert [s for s in STAGES if s in seen] == list(STAGES), seen  # build, clone, smoke, destroy
    assert seen.index("image build") < seen.index("clone") < seen.index("guest exec")


def test_the_checker_catches_a_wrong_command_line() -> None:
    with pytest.raises(click.UsageError):
        parse(shell_words("vmforge clone IMAGE --no-such-option"))
    with pytest.raises(click.UsageError):
        parse(shell_words("vmforge image biuld --spec ci/golden.toml"))
    assert parse(shell_words('vmforge clone "$(jq -r .image.id image.json)" "$VM" --json'))[0] == "clone"


def test_the_example_spec_loads_and_the_json_path_exists() -> None:
    spec, _ = load_spec(CI / "golden.toml")
    assert spec.os.value == "windows" and spec.vm.connect == "qemu:///system"
    for name in EXAMPLES:
        assert "jq -r .image.id image.json" in (CI / name).read_text()
    from vmforge.images.build import BuildResult
    from vmforge.images.store import Image

    image = Image("ab" * 32, "l", "t", "windows", "p", "v", "/k", "0" * 64, 1, None, True, True, True)
    assert BuildResult(image, True, 0.1, 0).to_data()["image"]["id"] == image.id  # what jq reads


def test_docs_point_at_the_examples() -> None:
    text = (REPO / "docs" / "images.md").read_text()
    for name in (*EXAMPLES, "golden.toml"):
        assert f"docs/ci/{name}" in text
