"""The `vidtwin` command line: builds the Typer app and maps errors to exit codes.

This is the only place that turns exceptions into exit codes (docs/cli.md):
0 ok, 1 runtime failure, 2 usage or input error, 128 + n stopped by signal n (130 Ctrl-C, 143 SIGTERM,
129 SIGHUP). Every message is one line on stderr, shown escaped (console.shown).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from typing import Annotated, Any

import click
import typer

from vidtwin_cli import __version__
from vidtwin_cli.console import err_console, library_warnings, message_line, warner
from vidtwin_cli.errors import VidtwinError
from vidtwin_cli.interrupts import Interrupted, stop_signals_raise


def _version(value: bool) -> None:
    if value:
        print(f"vidtwin {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """VidTwin video codec."""


def _no_type(ctx: Any) -> None:
    return None


def _flags_read_like_flags(command: Any) -> None:
    """Show on/off options as `--json`, not `--json <bool>`: recent typer prints every option's type,
    asking the option itself (`display_type_rich`). Typer carries its own copy of click, hence `Any`."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.display_type_rich = _no_type
    make_help_option = command.get_help_option  # --help is made per context, outside `params`

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.display_type_rich = _no_type
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _flags_read_like_flags(sub)


def build_app() -> Any:
    """The command line with every command. The command modules import torch, PyAV and numpy inside the
    commands, so building this (all `--help` needs) is quick; `main` still builds it inside its signal
    handling, so that Ctrl-C while starting up is one line like any other."""
    from vidtwin_cli.commands import batch, bench, convert, datasets, decode, demo, encode, generate, info, inspect
    from vidtwin_cli.commands import models, swap, train, verify

    app = typer.Typer(
        name="vidtwin",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        help="VidTwin video codec: encode video to compact structure/dynamics latents (.vtw) and back.",
    )
    app.callback()(_root)
    app.command("demo")(demo.command)
    app.command("encode")(encode.command)
    app.command("decode")(decode.command)
    app.command("swap")(swap.command)
    app.command("info")(info.command)
    app.add_typer(models.app, name="models")
    app.command("convert")(convert.command)
    app.command("inspect")(inspect.command)
    app.command("verify")(verify.command)
    app.add_typer(datasets.app, name="datasets")
    app.command("generate")(generate.command)
    app.add_typer(train.app, name="train")
    app.add_typer(batch.app, name="batch")
    app.command("bench")(bench.command)
    command = typer.main.get_command(app)
    _flags_read_like_flags(command)
    return command


def _debug(argv: list[str]) -> bool:
    """Whether the root option `--debug` was given: parsed as declared (before the command), not found
    anywhere in argv (a file named --debug after `--` is no request for tracebacks)."""
    root = typer.Typer(add_completion=False)
    root.callback()(_root)
    try:
        context = typer.main.get_command(root).make_context("vidtwin", list(argv), resilient_parsing=True)
    except click.ClickException:
        return False
    return bool(context.params.get("debug"))


def _os_error_line(e: OSError) -> str:
    """What the system refused, in one line: 'OUT.vtw: No space left on device'."""
    where = f"{e.filename}: " if e.filename else ""
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}{reason}; free some space (or choose another output folder) and rerun"
    return f"{where}{reason}"


def _stdout_closed() -> None:
    """After a broken pipe, point stdout at /dev/null so that the exit-time flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the process exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    err = err_console()

    def fail(message: str, code: int) -> int:
        err.print(message_line(message), soft_wrap=True)
        return code

    try:
        with stop_signals_raise():
            app = build_app()
            with library_warnings(warner(err)):  # what the library logs prints as `warning: ...` lines
                result = app(args=argv, prog_name="vidtwin", standalone_mode=False)
            return result if isinstance(result, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except Interrupted as stop:  # Ctrl-C, SIGTERM, SIGHUP (interrupts.py)
        return fail(stop.line(), stop.exit_code)
    except typer.TyperException as e:  # parser errors: bad flag, missing argument, unknown command
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        return fail(f"error: {message}{where}", getattr(e, "exit_code", 2))
    except VidtwinError as e:
        return fail(f"error: {e}", e.exit_code)
    except BrokenPipeError:  # whoever read our stdout stopped reading (`| head`)
        _stdout_closed()
        return fail("error: the output pipe was closed before all data was written", 1)
    except OSError as e:  # the system refused (disk full, quota, permissions) somewhere no layer translated
        return fail(f"error: {_os_error_line(e)}", 1)
    except MemoryError as e:
        return fail(f"error: out of memory{f' ({e})' if str(e) else ''}; try a smaller --batch-size", 1)
    except Exception as e:  # the one catch-all: report in one line, never a traceback by default
        if _debug(argv):
            traceback.print_exc()
        return fail(f"error: unexpected {type(e).__name__}: {e} (rerun with --debug for a traceback)", 1)
    finally:
        try:  # now, not at interpreter exit, where a closed pipe would print a stray "Exception ignored"
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError):  # closed pipe, closed or missing stdout
            _stdout_closed()


def entry() -> None:
    sys.exit(main())
