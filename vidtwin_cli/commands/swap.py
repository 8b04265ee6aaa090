"""`vidtwin swap`: cross-reenactment, the structure of A moved with the dynamics of B."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli.atomic import STDIO, check_writable
from vidtwin_cli.console import err_console, print_json, task_progress, warner
from vidtwin_cli.vtw.coded import EntropyCoding
from vidtwin_cli.vtw.header import LATENT_DTYPES
from vidtwin_cli.errors import UsageError
from vidtwin_cli.codec.pipeline import VideoOutput, swap_vtw
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.commands.options import (
    BatchOption, CodecOption, CompileOption, CrfOption, DeviceOption, ForceOption, FormatOption, JsonOption,
    ModelOption, PrecisionOption, QuietOption,
)  # fmt: skip


def command(
    structure: Annotated[Path, typer.Argument(help=".vtw whose structure (content) is kept.")],
    dynamics: Annotated[Path, typer.Argument(help=".vtw whose dynamics (motion) drive it; its timeline is used.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Video file, or .vtw to store the swapped latents.")],
    span: Annotated[str | None, typer.Option("--range", help="Swap only START:END (seconds of the dynamics video).")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="Raw latent storage for .vtw output (fp16, bf16, fp32, int8); default: entropy-coded.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = "fp32",
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    format: FormatOption = None,
    force: ForceOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Decode the structure latents of one .vtw with the dynamics latents of another."""
    as_vtw = output.suffix == ".vtw"
    if dtype is not None and dtype not in LATENT_DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(LATENT_DTYPES)}")
    if STDIO in (str(structure), str(dynamics)):
        raise UsageError("swap reads two files; stdin is not supported here")
    if str(output) == STDIO and json_out:
        raise UsageError("--json and -o - both want stdout")
    check_writable(output, (structure, dynamics))
    err = err_console()
    session = ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile)
    with task_progress(err, "swap", quiet) as task:
        result = swap_vtw(structure, dynamics, output, session, span=span, as_vtw=as_vtw, dtype=dtype or EntropyCoding(),
                          output=VideoOutput(codec, crf, format), force=force, progress=task.advance,
                          on_start=task.start)  # fmt: skip
    if json_out:
        print_json(result)
    elif not quiet:
        err.print(f"{structure} + {dynamics} -> {output}: {result['frames']} frames, "
                  f"{result['clips_swapped']} clips swapped", markup=False, soft_wrap=True)
