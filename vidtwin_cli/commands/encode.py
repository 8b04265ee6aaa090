"""`vidtwin encode`: video files -> .vtw latent files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidtwin_cli import api
from vidtwin_cli.atomic import STDIO
from vidtwin_cli.console import TaskProgress, err_console, print_json, progress_bar, warner
from vidtwin_cli.errors import RuntimeFailure, UsageError, VidtwinError
from vidtwin_cli.commands.options import (
    BatchOption, CompileOption, DeviceOption, FormatOption, JsonOption, ModelOption, PrecisionOption, QuietOption,
)  # fmt: skip


def output_for(src: Path, output: Path | None, out_dir: Path | None) -> Path:
    """-o, else OUT_DIR/<stem>.vtw, else <input>.vtw beside the input ('-' in, '-' out)."""
    if output is not None:
        return output
    if str(src) == STDIO:
        if out_dir is not None:
            raise UsageError("stdin input needs -o (no file name to derive one from)")
        return Path(STDIO)
    return (out_dir / src.name if out_dir else src).with_suffix(".vtw")


def command(
    inputs: Annotated[list[Path], typer.Argument(help="Video files ('-' = stdin, with --format).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output .vtw ('-' = stdout); one input only.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Directory for <name>.vtw outputs.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "cpu",
    precision: PrecisionOption = "fp32",
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    fit: Annotated[str, typer.Option("--fit", help="tile (exact size), resize, or crop (official centre crop).")] = "tile",
    dtype: Annotated[str, typer.Option("--dtype", help="Latent storage: fp16, bf16, fp32 or int8.")] = "fp16",
    sample: Annotated[bool, typer.Option("--sample", help="Store posterior samples instead of means.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for --sample.")] = None,
    format: FormatOption = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="A damaged or cut input is an error (default: a warning naming the frames kept).")] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode videos to compact structure/dynamics latents (.vtw)."""
    options = api.EncodeOptions(fit, dtype, sample, seed, strict)
    if len(inputs) > 1 and output is not None:
        raise UsageError("-o takes a single input; use --out-dir for several")
    if out_dir is not None and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is not a directory")
    if sum(str(p) == STDIO for p in inputs) > (1 if len(inputs) == 1 else 0):
        raise UsageError("'-' (stdin) can only be the single input")
    jobs = [(src, output_for(src, output, out_dir)) for src in inputs]
    if json_out and any(str(dst) == STDIO for _, dst in jobs):
        raise UsageError("--json and -o - both want stdout; write the .vtw to a file")
    if len({str(dst) for _, dst in jobs}) < len(jobs):
        raise UsageError("two inputs would write the same output; use distinct names or separate runs")

    err = err_console()
    session = api.ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile)
    results, failures = [], []
    with progress_bar(err, quiet) as bars:
        overall = TaskProgress(bars, "files") if len(jobs) > 1 else None
        if overall:
            overall.start(len(jobs))
        for src, dst in jobs:
            task = TaskProgress(bars, src.name if str(src) != STDIO else "stdin")
            try:
                results.append(api.encode(src, dst, model=session, options=options, format=format,
                                          progress=task.advance, on_start=task.start))  # fmt: skip
            except VidtwinError as e:
                if len(jobs) == 1:
                    raise
                failures.append({"input": str(src), "error": str(e)})
                err.print(f"error: {e}", markup=False, soft_wrap=True)
            finally:
                task.remove()
            if overall:
                overall.advance(1)
    if json_out:
        records = [r.to_json() for r in results]
        print_json(records[0] if len(jobs) == 1 else {"results": records, "failed": failures})
    elif not quiet:
        for r in results:
            err.print(f"{r.input} -> {r.output}: {r.frames} frames, {r.bytes:,} bytes "
                      f"({r.compression_vs_raw:.0f}x vs raw RGB), {r.frames_per_second:.1f} frames/s",
                      markup=False, soft_wrap=True)  # fmt: skip
    if failures:
        raise RuntimeFailure(f"{len(failures)} of {len(jobs)} inputs failed")
