"""Where human-facing output goes: stderr only, so stdout stays data."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    Task,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vidtwin_cli.callbacks import Warn



class RateColumn(ProgressColumn):
    """Items per second (frames/s, files/s), blank until rich has a speed estimate."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} {self.unit}/s")


def err_console() -> Console:
    """A console on stderr (rich would otherwise default to stdout)."""
    return Console(stderr=True, highlight=False)


def warner(console: Console) -> Warn:
    """A `warn(message)` that prints one unwrapped `warning: message` line on `console`."""

    def warn(message: str) -> None:
        console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    return warn


class _WarningLines(logging.Handler):
    """A logging handler that hands each warning record's message to a `warn` callback."""

    def __init__(self, warn: Warn) -> None:
        super().__init__(logging.WARNING)
        self.warn = warn

    def emit(self, record: logging.LogRecord) -> None:
        self.warn(record.getMessage())


@contextlib.contextmanager
def library_warnings(warn: Warn) -> Iterator[None]:
    """While the block runs, warnings the library logs (logger `vidtwin_cli`) go to `warn`.

    Library code without a `warn` callback of its own logs its warnings; the CLI routes them here,
    so every warning reaches stderr as one `warning: ...` line.
    """
    logger = logging.getLogger("vidtwin_cli")
    handler = _WarningLines(warn)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def progress_bar(console: Console, quiet: bool = False, unit: str = "frames") -> Progress:
    """A transient progress display on stderr that never redirects stdout.

    Disabled with `--quiet` and whenever stderr is not a terminal (CI logs, pipes).
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=quiet or not console.is_terminal,
    )


def print_json(obj: Any) -> None:
    """Write the one machine-readable result object to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


class TaskProgress:
    """Callbacks that library code drives: `start(total)` once the total is known, `advance(n)`."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=None)

    def start(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def remove(self) -> None:
        self._progress.remove_task(self._task)


@contextlib.contextmanager
def task_progress(console: Console, description: str, quiet: bool = False, unit: str = "frames") -> Iterator[TaskProgress]:
    """One progress bar on stderr for one piece of work (e.g. one file's frames)."""
    with progress_bar(console, quiet, unit) as progress:
        yield TaskProgress(progress, description)
