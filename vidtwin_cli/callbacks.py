"""The callbacks library code takes instead of printing: progress counts and one-line warnings.

The CLI connects them to a rich progress bar and to `warning:` lines on stderr (`console.py`);
API users pass their own or none.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int], None]  # progress(n): n more units (frames, files, steps) are done
OnStart = Callable[[int | None], None]  # on_start(total): the total is known (None: it is not)
Warn = Callable[[str], None]  # warn(message): one line, no "warning:" prefix
