"""`vidtwin decode`: a .vtw -> a playable video with the source's size, frame count and timing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.atomic import STDIO, check_writable
from vidtwin_cli.console import err_console, print_json, task_progress, warner
from vidtwin_cli.errors import UsageError
from vidtwin_cli.codec.pipeline import DEFAULT_MAX_SIDE, VideoOutput, decode_vtw
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.commands.options import (
    BatchOption, CodecOption, CompileOption, CrfOption, DeviceOption, ForceOption, FormatOption, JsonOption, MaxSideOption,
    ModelOption, PrecisionOption, QuietOption,
)  # fmt: skip

ONLY = ("structure", "dynamics")


def command(
    source: Annotated[Path, typer.Argument(help=".vtw file ('-' = stdin).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video file to write ('-' = stdout, with --format).")],
    only: Annotated[str | None, typer.Option("--only", help="Decode one latent alone: structure or dynamics.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = "fp32",
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    format: FormatOption = None,
    max_side: MaxSideOption = DEFAULT_MAX_SIDE,
    force: ForceOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Decode latents to video (the model recorded in the file unless --model is given)."""
    if only is not None and only not in ONLY:
        raise UsageError(f"--only must be one of {', '.join(ONLY)}")
    if str(output) == STDIO and json_out:
        raise UsageError("--json and -o - both want stdout; write the video to a file")
    check_writable(output, (source,))
    err = err_console()
    session = ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile)
    with task_progress(err, source.name, quiet) as task:
        result = decode_vtw(source, output, session, only=only, output=VideoOutput(codec, crf, format, max_side),
                            force=force, progress=task.advance, on_start=task.start)  # fmt: skip
    if json_out:
        print_json(result)
    elif not quiet:
        err.print(f"{result['input']} -> {result['output']}: {result['frames']} frames "
                  f"{result['width']}x{result['height']}, {result['frames'] / result['seconds']:.1f} frames/s",
                  markup=False, soft_wrap=True)  # fmt: skip
