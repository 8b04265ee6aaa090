"""`vidtwin models list|pull|rm`: the models this machine has, fetching one now, removing one."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich import filesize
from rich.table import Table

from vidtwin_cli.console import err_console, print_json, progress_bar, stages
from vidtwin_cli.commands.options import JsonOption, QuietOption

app = typer.Typer(no_args_is_help=True, help="List, fetch and remove models (bundled, presets, hub downloads).")
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Hub id org/name[@revision][:file].")]


@app.command("list")
def list_command(json_out: JsonOption = False) -> None:
    """Bundled model, presets and cached hub models, with size, sha256, source and last use."""
    from vidtwin_cli.codec.model_cache import list_models  # torch loads here, not when --help is built

    entries = list_models()
    if json_out:
        print_json({"models": [e.to_json() for e in entries]})
        return
    table = Table(box=None)
    for column in ("model", "kind", "size", "sha256", "source", "last used"):
        table.add_column(column, no_wrap=column != "source", overflow="fold")
    for e in entries:
        used = "-" if e.last_used is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        table.add_row(e.id, e.kind, "-" if e.bytes is None else filesize.decimal(e.bytes),
                      (e.weights_sha256 or "-")[:12], e.source.replace(e.commit, e.commit[:12]) if e.commit else e.source,
                      used)  # fmt: skip
    err_console().print(table)


@app.command("pull")
def pull_command(model: IdArgument, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Download (and for an official checkpoint, convert) a hub model now, so later runs start at once."""
    from vidtwin_cli.codec.weights import resolve_model  # torch loads here, not when --help is built

    err = err_console()
    started = time.perf_counter()
    with progress_bar(err, quiet) as bars:
        loaded = resolve_model(model, progress=stages(bars))
    result = {"model": loaded.spec, "source": loaded.source, "commit": loaded.commit,
              "path": str(loaded.path) if loaded.path else None, "weights_sha256": loaded.sha256,
              "config": loaded.config.to_dict(), "seconds": time.perf_counter() - started}  # fmt: skip
    if json_out:
        print_json(result)
    elif not quiet:
        at = f" at {loaded.commit[:12]}" if loaded.commit else ""
        err.print(f"{loaded.spec}{at}: ready ({loaded.path}, sha256 {loaded.sha256[:16]}…, "
                  f"{result['seconds']:.1f} s)", markup=False, soft_wrap=True)  # fmt: skip


@app.command("rm")
def rm_command(model: IdArgument, json_out: JsonOption = False) -> None:
    """Remove a hub model from the caches: its conversion and its download (org/name: every revision)."""
    from vidtwin_cli.codec.model_cache import remove_model  # torch loads here, not when --help is built

    removed = remove_model(model)
    if json_out:
        print_json({"model": model, "removed": removed})
    else:
        for item in removed:
            err_console().print(f"removed {item}", markup=False, soft_wrap=True)
