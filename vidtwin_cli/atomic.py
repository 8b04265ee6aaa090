"""Atomic file output: a failed or interrupted run never leaves a partial file."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vidtwin_cli.errors import InputError, UsageError

STDIO = "-"


def check_writable(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse output paths that cannot be written or would overwrite an input."""
    if str(path) == STDIO:
        if sys.stdout.isatty():
            raise InputError("refusing to write binary output to a terminal; redirect stdout or pass -o FILE")
        return
    if not path.parent.is_dir():
        raise InputError(f"{path}: output directory {path.parent} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: output is a directory")
    for src in inputs:
        if str(src) != STDIO and src.exists() and path.exists() and os.path.samefile(src, path):
            raise InputError(f"{path}: output would overwrite the input")


class Existing:
    """What to do with an output that already exists: refuse (the default), replace (`-y`) or skip (`-n`)."""

    def __init__(self, overwrite: bool = False, never: bool = False) -> None:
        if overwrite and never:
            raise UsageError("-y/--overwrite and -n/--no-overwrite contradict each other")
        self.overwrite, self.never = overwrite, never

    def skip(self, path: Path | str) -> bool:
        """True when `path` exists and `-n` keeps it; raises InputError when it exists and neither flag was given."""
        if str(path) == STDIO or not Path(path).exists() or self.overwrite:
            return False
        if self.never:
            return True
        raise InputError(f"{path}: already exists; pass -y to overwrite it (or -n to keep existing outputs)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only on success.

    The temporary keeps the final suffix (or `suffix`) so that libraries that pick a
    format from the file name (PyAV) still see the right one.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[BinaryIO]:
    """Open `path` (or stdout for "-") for binary writing, atomically."""
    if str(path) == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        yield f
