"""Where human-facing output goes: stderr only, so stdout stays data.

Strings from files and users (a `.vtw` header's model spec or tool name, a file name, an error
message quoting either) are data, never terminal instructions: `shown` replaces control characters
with visible escapes, and the stderr console never interprets rich markup or emoji codes in text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import unicodedata
from collections.abc import Iterator
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
from rich import filesize
from rich.text import Text

from vidtwin_cli.atomic import stdout_text
from vidtwin_cli.callbacks import Progress as Advance, Warn

# Invisible characters that reorder or break the text around them ("Trojan Source" bidi controls,
# line/paragraph separators); the other dangerous ones are in the categories below.
INVISIBLE = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ESCAPED_CATEGORIES = ("Cc", "Cs")  # control characters (ESC, BEL, CR, C1 ...), lone surrogates


def shown(text: str) -> str:
    """`text` made safe for a terminal: every control character (ANSI/OSC escapes, carriage returns,
    bells), lone surrogate and bidi control becomes a visible Python-style escape such as `\\x1b`.

    Newlines and tabs stay (they only lay text out); one-line messages collapse them separately.
    """
    return "".join(
        c.encode("unicode_escape", "backslashreplace").decode("ascii")
        if c not in "\n\t" and (unicodedata.category(c) in ESCAPED_CATEGORIES or c in INVISIBLE) else c
        for c in text
    )


def message_line(text: str) -> str:
    """`shown(text)` on one line: runs of whitespace (newlines included) become one space."""
    return " ".join(shown(text).split())


class SafeConsole(Console):
    """A rich console that shows every string as plain text: markup off, emoji codes off, `shown`.

    Rich turns strings into renderables in `render_str` (print arguments, table cells), so
    escaping there covers every string, whoever builds the renderable. Styles are applied with
    `Text` objects and `style=`, never with markup in strings.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(shown(text), **kwargs)


BYTES = "bytes"  # a task whose `unit` field says so counts bytes (a model download, a checksum pass)


class RateColumn(ProgressColumn):
    """Items per second (frames/s, files/s; MB/s for byte tasks), blank until rich has a speed estimate."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        if task.fields.get("unit") == BYTES:
            return Text(f"{filesize.decimal(int(speed))}/s")
        return Text(f"{speed:.1f} {task.fields.get('unit', self.unit)}/s")


class CountColumn(MofNCompleteColumn):
    """done/total, in kB/MB/GB for byte tasks."""

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") != BYTES:
            return super().render(task)
        total = "?" if task.total is None else filesize.decimal(int(task.total))
        return Text(f"{filesize.decimal(int(task.completed))}/{total}", style="progress.download")


PIPED_WIDTH = 200  # columns for tables when stderr is a log or a pipe (rich would cut them to 80)


def err_console() -> Console:
    """The console on stderr (rich would otherwise default to stdout; see `SafeConsole`); not cut to 80 columns when piped."""
    console = SafeConsole(stderr=True, highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def warner(console: Console) -> Warn:
    """A `warn(message)` that prints one unwrapped `warning: message` line on `console`."""

    def warn(message: str) -> None:
        console.print(f"warning: {message_line(message)}", soft_wrap=True)

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
        TextColumn("{task.description}", style="bold", markup=False),  # descriptions are file names
        BarColumn(),
        CountColumn(),
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
    out = stdout_text()
    out.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    out.flush()


def stages(progress: Progress) -> Callable[[str, int | None, str], Advance]:
    """A `StageProgress` (codec/hub.py) on `progress`: each stage (download, conversion) gets its own task."""

    def stage(description: str, total: int | None, unit: str) -> Advance:
        task = progress.add_task(description, total=total, unit=unit)
        return lambda n: progress.advance(task, n)

    return stage


class TaskProgress:
    """Callbacks that library code drives: `start(total)` once the total is known, `advance(n)`."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(shown(description), total=None)

    def start(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def stage(self, description: str, total: int | None, unit: str) -> Advance:
        """One more task on the same display (`stages`), e.g. a model download."""
        return stages(self._progress)(description, total, unit)

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
