"""Where human-facing output goes: stderr only, so stdout stays data."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
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

ProgressCallback = Callable[[int], None]


class RateColumn(ProgressColumn):
    """Items per second (frames/s, files/s), blank until rich has a speed estimate."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f} {self.unit}/s")


PIPED_WIDTH = 200  # columns for tables when stderr is a log or a pipe (rich would cut them to 80)


def err_console() -> Console:
    """A console on stderr (rich would otherwise default to stdout); not cut to 80 columns when piped."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def warner(console: Console) -> Callable[[str], None]:
    """A `warn(message)` that prints one unwrapped `warning: message` line on `console`."""

    def warn(message: str) -> None:
        console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    return warn


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


def report_kept(path: Path | str, json_out: bool, quiet: bool) -> None:
    """Say that an existing output was left alone (`-n`): one line on stderr, or the JSON result."""
    if json_out:
        print_json({"output": str(path), "skipped": "exists (-n)"})
    elif not quiet:
        err_console().print(f"{path}: exists; left as it is (-n)", markup=False, soft_wrap=True)
