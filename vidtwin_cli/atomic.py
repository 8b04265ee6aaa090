"""Atomic file output: a failed or interrupted run never leaves a partial file.

Output is written to a hidden temporary beside the final file, `.NAME.HOST.PID.XXXXXXXX.SUFFIX`, and
renamed into place on success; an error, Ctrl-C, SIGTERM or SIGHUP deletes it. Only a run killed
outright (SIGKILL, a power cut) can leave one, and its name says whose it was: the next run that
writes the same output deletes the temporaries of processes of this host that no longer exist
(docs/cli.md, "Interrupted runs").
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from vidtwin_cli.errors import InputError, RuntimeFailure, UsageError
from vidtwin_cli.interrupts import Interrupted

STDIO = "-"
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)  # the storage refused the output


def stdin_bytes() -> BinaryIO:
    """Standard input as bytes; a closed one (`<&-`: Python then has no sys.stdin) is a usage error."""
    if sys.stdin is None:
        raise UsageError("standard input is closed; pipe data into '-' or give a file")
    return sys.stdin.buffer


def stdout_text() -> TextIO:
    """Standard output; a closed one (`>&-`) is a usage error."""
    if sys.stdout is None:
        raise UsageError("standard output is closed; redirect it (e.g. > out) or write to a file")
    return sys.stdout


def stdout_bytes() -> BinaryIO:
    return stdout_text().buffer


def check_writable(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse output paths that cannot be written or would overwrite an input."""
    if str(path) == STDIO:
        if stdout_text().isatty():
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


def hidden_names(folder: Path) -> list[str]:
    """Names starting with '.' in `folder` (none if it does not exist)."""
    return [name for name in os.listdir(folder) if name.startswith(".")] if folder.is_dir() else []


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_temporaries(path: Path, hidden: list[str] | None = None, any_owner: bool = False) -> None:
    """Delete the temporaries killed writers left beside `path` (see the module docstring).

    Only those of processes of this host that are gone, unless `any_owner` (the caller knows that
    nobody else writes `path`, e.g. a batch that has claimed it). `hidden`: `hidden_names(path.parent)`,
    when the caller has listed the folder already.
    """
    path = Path(path)
    ours = f".{path.name}.{socket.gethostname()}."  # then PID.XXXXXXXX[.SUFFIX]
    for name in hidden_names(path.parent) if hidden is None else hidden:
        if not name.startswith(f".{path.name}."):
            continue
        pid = name[len(ours):].partition(".")[0] if name.startswith(ours) else ""
        if any_owner or (pid.isdigit() and not process_alive(int(pid))):
            with contextlib.suppress(FileNotFoundError):
                (path.parent / name).unlink()


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only on success.

    The temporary keeps the final suffix (or `suffix`) so that libraries that pick a
    format from the file name (PyAV) still see the right one.
    """
    path = Path(path)
    remove_temporaries(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{socket.gethostname()}.{os.getpid()}.",
                                        suffix=suffix if suffix is not None else path.suffix, dir=path.parent)
    except OSError as e:
        raise InputError(f"{path}: cannot create a file beside it ({e.strerror or e})") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in WRITE_ERRNOS:
            raise RuntimeFailure(f"{path}: cannot write ({e.strerror or e})") from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[BinaryIO]:
    """Open `path` (or stdout for "-") for binary writing, atomically."""
    if str(path) == STDIO:  # writers write as soon as they enter: a stop inside leaves a part on stdout
        out = stdout_bytes()
        try:
            yield out
        except Interrupted as stop:
            raise stop.cutting_stdout() from None
        out.flush()
        return
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        yield f
