"""`vidtwin verify`: is a .vtw intact? Magic, version, checksum, tensor names, dtypes and shapes."""

from __future__ import annotations

import typer

from vidtwin_cli.commands.options import JsonOption, VtwArgument
from vidtwin_cli.console import err_console, print_json


def command(file: VtwArgument, json_out: JsonOption = False) -> None:
    """Check a .vtw file: exit 0 when valid, 1 (with the reason) when not, 2 when it cannot be read."""
    from vidtwin_cli import api  # torch loads here, not when --help is built

    report = api.verify(file)
    if json_out:
        print_json(report.to_json())
    err = err_console()
    if not report.valid:
        err.print(f"error: {report.error}", markup=False, soft_wrap=True)
        raise typer.Exit(1)  # a verdict, not a failure of the command: no exception for main() to map
    err.print(f"{report.file}: ok (vtw {report.format_version}, {report.clips} clips, "
              f"{report.file_bytes:,} bytes, sha256 {report.sha256[:16]}…)", markup=False, soft_wrap=True)
