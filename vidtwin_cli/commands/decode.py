"""`vidtwin decode`: a .vtw -> a playable video with the source's size, frame count and timing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.atomic import STDIO, Existing
from vidtwin_cli.console import err_console, print_json, report_kept, task_progress, warner
from vidtwin_cli.errors import UsageError
from vidtwin_cli.defaults import AUTO, DEFAULT_MAX_SIDE
from vidtwin_cli.commands.options import (
    BatchOption, CodecOption, CompileOption, CrfOption, DeviceOption, ForceOption, FormatOption, JsonOption,
    RANGE_SYNTAX, MaxSideOption, ModelOption, NoOverwriteOption, OnlyOption, OverwriteOption, PrecisionOption,
    QuietOption,
)  # fmt: skip


def command(
    source: Annotated[Path, typer.Argument(help=".vtw file ('-' = stdin).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video file to write ('-' = stdout, with --format).")],
    span: Annotated[str | None, typer.Option("--range", help=f"Decode only this part: {RANGE_SYNTAX}.")] = None,
    only: OnlyOption = None,
    model: ModelOption = None,
    device: DeviceOption = AUTO,
    precision: PrecisionOption = AUTO,
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    format: FormatOption = None,
    max_side: MaxSideOption = DEFAULT_MAX_SIDE,
    force: ForceOption = False,
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Decode latents to video (the model recorded in the file unless --model is given), or a --range of it."""
    from vidtwin_cli import api  # torch and PyAV load here, not when --help is built

    options, video = api.DecodeOptions(only, force, span), api.VideoOutput(codec, crf, format, max_side)
    if str(output) == STDIO and json_out:
        raise UsageError("--json and -o - both want stdout; write the video to a file")
    if Existing(overwrite, never).skip(output):
        report_kept(output, json_out, quiet)
        return
    err = err_console()
    with task_progress(err, source.name, quiet) as task:
        session = api.ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile,
                                   progress=task.stage)  # fmt: skip
        result = api.decode(source, output, model=session, options=options, video=video, progress=task.advance,
                            on_start=task.start)  # fmt: skip
    if json_out:
        print_json(result.to_json())
    elif not quiet:
        part = f" (frames {result.range_frames[0]}-{result.range_frames[1]}, from {result.range_start_s:.3f} s)" if result.range_frames else ""
        err.print(f"{result.input} -> {result.output}: {result.frames} frames{part} {result.width}x{result.height}, "
                  f"{result.frames_per_second:.1f} frames/s on {result.device} ({result.precision})", markup=False,
                  soft_wrap=True)  # fmt: skip
