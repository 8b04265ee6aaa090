"""Stopping a run on request: Ctrl-C, SIGTERM and SIGHUP end it the same way.

Every output goes through `atomic.py`, whose temporary file is deleted on any exception, so a stopped
run leaves no partial file. The `Interrupted` that reaches `app.main()` becomes one line on stderr
(what was kept, if anything) and exit code 128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM,
129 for SIGHUP, what a shell reports for a process that signal killed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A run stopped by a signal; `kept` says what it had written by then (None: nothing).

    A BaseException, like KeyboardInterrupt and SystemExit, so that `except Exception` never swallows
    it, but not a KeyboardInterrupt: typer turns those into a silent exit 130.
    """

    def __init__(self, signum: int = signal.SIGINT, kept: str | None = None) -> None:
        super().__init__(int(signum), kept)
        self.signum, self.kept = int(signum), kept

    def keeping(self, kept: str) -> Interrupted:
        """The same stop (same signal), now saying what was kept."""
        return Interrupted(self.signum, kept)

    def cutting_stdout(self) -> Interrupted:
        """The same stop, saying that an output streamed to stdout ends early: a pipe cannot take bytes back."""
        return self.keeping("the output sent to stdout is cut short")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self) -> str:
        how = "interrupted" if self.signum == signal.SIGINT else f"terminated ({signal.Signals(self.signum).name})"
        return f"{how}; {self.kept or 'nothing written'}"


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Interrupted`.

    Only the first signal raises; later ones are ignored until the block ends, so that cleanup
    (deleting a temporary, saving a checkpoint, stopping workers) is not cut short. Signals can
    only be handled in the main thread; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
