"""`vidtwin encode`: video files -> .vtw latent files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidtwin_cli.atomic import STDIO, Existing
from vidtwin_cli.console import TaskProgress, err_console, print_json, progress_bar, report_kept, stages, warner
from vidtwin_cli.errors import RuntimeFailure, UsageError, VidtwinError
from vidtwin_cli.interrupts import Interrupted
from vidtwin_cli.defaults import AUTO, DEFAULT_KEYINT, DEFAULT_QUALITY, ENTROPY
from vidtwin_cli.commands.options import (
    BatchOption, CompileOption, DeviceOption, DtypeOption, DurationOption, FitOption, FormatOption, FramesOption, JsonOption,
    KeyintOption, ModelOption, NoAudioOption, NoOverwriteOption, OverwriteOption, PrecisionOption, QualityOption,
    QuietOption, RefineOption, SampleOption, SeedOption, StartOption, StepOption, StrictOption,
)  # fmt: skip

if TYPE_CHECKING:
    from vidtwin_cli import api


def output_for(src: Path, output: Path | None, out_dir: Path | None) -> Path:
    """-o, else OUT_DIR/<stem>.vtw, else <input>.vtw beside the input ('-' in, '-' out)."""
    if output is not None:
        return output
    if str(src) == STDIO:
        if out_dir is not None:
            raise UsageError("stdin input needs -o (no file name to derive one from)")
        return Path(STDIO)
    return (out_dir / src.name if out_dir else src).with_suffix(".vtw")


def _sizes(r: api.EncodeResult) -> str:
    """The .vtw against raw RGB and against the input file (which may be smaller than the .vtw)."""
    raw = f"{r.compression_vs_raw:.0f}x smaller than raw RGB" if r.compression_vs_raw else "empty"
    if r.input_bytes is None:
        return raw
    ratio = r.input_bytes / r.bytes
    versus = f"{ratio:.1f}x smaller than the input file" if ratio >= 1 else f"{1 / ratio:.1f}x larger than the input file"
    return f"{raw}, {versus}"


@contextlib.contextmanager
def _saying_what_was_kept(results: list[api.EncodeResult]) -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM) after some inputs are done names the finished outputs, which stay."""
    try:
        yield
    except Interrupted as stop:
        if not results:
            raise
        names = ", ".join(r.output for r in results[:3]) + (", ..." if len(results) > 3 else "")
        raise stop.keeping(f"kept {len(results)} finished output{'s' * (len(results) > 1)} ({names})") from None


def command(
    inputs: Annotated[list[Path], typer.Argument(help="Video files ('-' = stdin, with --format).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output .vtw ('-' = stdout); one input only.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Directory for <name>.vtw outputs (created if missing).")] = None,
    model: ModelOption = None,
    device: DeviceOption = AUTO,
    precision: PrecisionOption = AUTO,
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    fit: FitOption = "tile",
    quality: QualityOption = DEFAULT_QUALITY,
    step: StepOption = None,
    keyint: KeyintOption = DEFAULT_KEYINT,
    dtype: DtypeOption = ENTROPY,
    refine: RefineOption = 0,
    no_audio: NoAudioOption = False,
    sample: SampleOption = False,
    seed: SeedOption = None,
    format: FormatOption = None,
    start: StartOption = 0.0,
    duration: DurationOption = None,
    frames: FramesOption = None,
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    strict: StrictOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode videos to compact structure/dynamics latents (.vtw)."""
    from vidtwin_cli import api  # torch and PyAV load here, not when --help is built

    options = api.EncodeOptions(fit, dtype, sample, seed, quality, step, keyint, audio=not no_audio,
                                trim=api.Trim(start, duration, frames), strict=strict, refine=refine)
    if len(inputs) > 1 and output is not None:
        raise UsageError("-o takes a single input; use --out-dir for several")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is not a directory")
    if sum(str(p) == STDIO for p in inputs) > (1 if len(inputs) == 1 else 0):
        raise UsageError("'-' (stdin) can only be the single input")
    jobs = [(src, output_for(src, output, out_dir)) for src in inputs]
    if json_out and any(str(dst) == STDIO for _, dst in jobs):
        raise UsageError("--json and -o - both want stdout; write the .vtw to a file")
    if len({str(dst) for _, dst in jobs}) < len(jobs):
        raise UsageError("two inputs would write the same output; use distinct names or separate runs")
    existing = Existing(overwrite, never)
    kept = [dst for _, dst in jobs if existing.skip(dst)]  # refuses here, before any work, without -y or -n
    jobs = [(src, dst) for src, dst in jobs if dst not in kept]
    if out_dir is not None and jobs:
        out_dir.mkdir(parents=True, exist_ok=True)  # as batch does

    err = err_console()
    results, failures = [], []
    with progress_bar(err, quiet) as bars, _saying_what_was_kept(results):
        session = api.ModelSession(model, device, precision, batch_size, warn=warner(err), compile=compile,
                                   progress=stages(bars))  # fmt: skip
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
    if len(inputs) == 1 and kept:
        report_kept(kept[0], json_out, quiet)
    elif json_out:
        records = [r.to_json() for r in results]
        print_json(records[0] if len(inputs) == 1 else {"results": records, "failed": failures,
                                                        "kept": [str(p) for p in kept]})  # fmt: skip
    elif not quiet:
        for path in kept:
            err.print(f"{path}: exists; left as it is (-n)", markup=False, soft_wrap=True)
        for r in results:
            err.print(f"{r.input} -> {r.output}: {r.frames} frames, {r.bytes:,} bytes "
                      f"({r.bits_per_value:.2f} bits/value, {_sizes(r)}), "
                      f"{r.frames_per_second:.1f} frames/s on {r.device} ({r.precision})",
                      markup=False, soft_wrap=True)  # fmt: skip
    if failures:
        raise RuntimeFailure(f"{len(failures)} of {len(jobs)} inputs failed")
