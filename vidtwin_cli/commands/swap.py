"""`vidtwin swap`: cross-reenactment, the structure of A moved with the dynamics of B."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.atomic import STDIO, Existing
from vidtwin_cli.console import err_console, print_json, report_kept, task_progress, warner
from vidtwin_cli.errors import UsageError
from vidtwin_cli.defaults import AUTO, DEFAULT_MAX_SIDE, ENTROPY
from vidtwin_cli.commands.options import (
    BatchOption, CodecOption, CompileOption, CrfOption, DeviceOption, ForceOption, FormatOption, JsonOption,
    RANGE_SYNTAX, MaxSideOption, ModelOption, NoOverwriteOption, OverwriteOption, PrecisionOption, QuietOption,
)  # fmt: skip


def command(
    structure: Annotated[Path, typer.Argument(help=".vtw or video whose structure (content) is kept; its size is used.")],
    dynamics: Annotated[Path, typer.Argument(help=".vtw or video whose dynamics (motion) drive it; its timeline is used.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video file, or .vtw to store the swapped latents.")],
    span: Annotated[str | None, typer.Option("--range", help=f"Swap only this part of the dynamics video: {RANGE_SYNTAX}.")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Latent storage for .vtw output: entropy (the dynamics file's step) or fp16, bf16, fp32, int8.")] = ENTROPY,
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
    """Decode the structure latents of one video with the dynamics latents of another (any sizes)."""
    from vidtwin_cli import api  # torch and PyAV load here, not when --help is built

    options, video = api.SwapOptions(span, dtype, force), api.VideoOutput(codec, crf, format, max_side)
    if STDIO in (str(structure), str(dynamics)):
        raise UsageError("swap reads two files; stdin is not supported here")
    if str(output) == STDIO and json_out:
        raise UsageError("--json and -o - both want stdout")
    if Existing(overwrite, never).skip(output):
        report_kept(output, json_out, quiet)
        return
    err = err_console()
    with task_progress(err, "swap", quiet) as task:
        session = api.ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile,
                                   progress=task.stage)  # fmt: skip
        result = api.swap(structure, dynamics, output, model=session, options=options, video=video,
                          progress=task.advance, on_start=task.start)  # fmt: skip
    if json_out:
        print_json(result.to_json())
    elif not quiet:
        err.print(f"{structure} + {dynamics} -> {output}: {result.frames} frames, "
                  f"{result.clips_swapped} clips swapped, on {result.device} ({result.precision})", markup=False,
                  soft_wrap=True)  # fmt: skip
