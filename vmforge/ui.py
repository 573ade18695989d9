"""What the user sees on stderr: steps with timings, progress lines, warnings.

On a terminal steps are drawn live (rich); elsewhere (CI, pipes) every event is one plain,
timestamp-free line so logs stay diffable.  stdout is reserved for results (``--json``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from rich.console import Console

from vmforge.logs import get_logger, redact

log = get_logger("ui")


class Reporter:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self.clock = clock
        self.console = Console(file=self.stream, force_terminal=self.live, highlight=False)
        self._depth = 0

    def _line(self, text: str, style: str = "") -> None:
        text = redact(text)
        log.info(text)
        if self.quiet:
            return
        indent = "  " * self._depth
        if self.live:
            self.console.print(f"{indent}{text}", style=style or None, markup=False)
        else:
            self.stream.write(f"{indent}{text}\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        self._line(text)

    def warn(self, text: str) -> None:
        self._line(f"warning: {text}", "yellow")

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """``with reporter.step("Building answer media"):`` prints the step and its duration."""
        start = self.clock()
        self._line(f"==> {title}", "bold")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._line(f"<== {title}: failed after {self.clock() - start:.1f}s", "red")
            raise
        self._depth -= 1
        self._line(f"<== {title}: done in {self.clock() - start:.1f}s", "green")
