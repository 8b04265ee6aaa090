"""The one exception family of vidtwin; `app.main` maps it to exit codes.

Exit codes (documented in docs/cli.md): 0 success, 1 runtime failure, 2 usage or
input error, 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; interrupts.py).
"""


class VidtwinError(Exception):
    """Base class: a one-line, user-facing message and the process exit code."""

    exit_code = 1


class UsageError(VidtwinError, ValueError):
    """Bad flags or flag combinations."""

    exit_code = 2


class InputError(VidtwinError, ValueError):
    """An input file is missing, unreadable, empty or not what it claims to be."""

    exit_code = 2


class ContainerError(InputError):
    """A `.vtw` file is malformed, truncated, corrupt or of an unsupported version."""


class ModelError(VidtwinError):
    """A model cannot be resolved or loaded, or does not match the data."""

    exit_code = 2


class RuntimeFailure(VidtwinError, RuntimeError):
    """Work that started correctly failed (device error, non-finite output, ...)."""

    exit_code = 1


def one_line(e: BaseException) -> str:
    """An exception's message on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(e).split()) or type(e).__name__
