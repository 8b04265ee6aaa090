"""`vidtwin batch encode|decode|bench`: whole folders or lists of files, resumable, on local workers or Ray."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidtwin_cli.batch.claims import DEFAULT_TIMEOUT_S, Claims
from vidtwin_cli.batch.inputs import parse_shard, plan
from vidtwin_cli.batch.manifest import JobLog, JobRecord
from vidtwin_cli.console import err_console, print_json, progress_bar, warner
from vidtwin_cli.defaults import AUTO, DEFAULT_KEYINT, DEFAULT_QUALITY, ENTROPY
from vidtwin_cli.errors import RuntimeFailure, UsageError
from vidtwin_cli.interrupts import Interrupted
from vidtwin_cli.commands.options import (
    BatchOption, BenchDtypeOption, BenchFitOption, CodecOption, CompileOption, CrfOption, DeviceOption, DtypeOption,
    DurationOption, FitOption, FramesOption, JsonOption, KeyintOption, ModelOption, NoAudioOption, OnlyOption,
    PrecisionOption, QualityOption, QuietOption, RefineOption, SampleOption, SeedOption, StartOption, StepOption,
    StrictOption,
)  # fmt: skip

if TYPE_CHECKING:  # the workers' modules load torch and PyAV: the commands import them when they run
    from vidtwin_cli.batch.jobs import Settings
    from vidtwin_cli.batch.local import LocalPool
    from vidtwin_cli.batch.ray_backend import RayPool
    from vidtwin_cli.batch.runner import BatchSummary


app = typer.Typer(no_args_is_help=True, help="Many files at once: resumable jobs on local worker processes or Ray.")

SrcArgument = Annotated[Path, typer.Argument(
    metavar="SRC", help="Folder (searched recursively) or a list of paths (.txt, .csv, .jsonl).")]
OutDirOption = Annotated[Path, typer.Option(
    "--out-dir", "-o", metavar="OUT_DIR", help="Outputs go here, mirroring the input tree.")]
ManifestOption = Annotated[Path | None, typer.Option(
    "--manifest", help="Job state (JSON lines); default OUT_DIR/batch-<command>[-<i>of<N>].jsonl.")]
GlobOption = Annotated[list[str] | None, typer.Option(
    "--glob", help="Pattern for files in a SRC folder, repeatable (default: common video / *.vtw).")]
RootOption = Annotated[Path | None, typer.Option(
    "--root", help="For a list SRC: the folder whose tree OUT_DIR mirrors (default: the list's folder).")]
ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="i/N", help="Only shard i of N (stable hash of each path), for job arrays.")]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", "-j", min=1, help="Worker processes / Ray actors (default: 1 on CPU, one per GPU; Ray: fill it).")]
ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", min=1, help="Torch threads per worker (default: cores / workers; Ray: 2).")]
RayOption = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDRESS", help="Run on Ray: 'local' starts it here; 'auto', HOST:PORT or ray://HOST:PORT joins.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Redo every file, even those already done.")]
ClaimTimeoutOption = Annotated[float, typer.Option(
    "--claim-timeout", min=0.5, metavar="SECONDS",
    help="Take over a file claimed by another process whose heartbeat is this old (it died on another machine).")]

RAY_THREADS = 2  # CPUs per Ray actor unless --threads says otherwise
NO_BASELINE = "none"


def _run(settings: Settings, src: Path, out_dir: Path, manifest: Path | None, patterns: list[str] | None,
         root: Path | None, shard: str | None, workers: int | None, threads: int | None, ray: str | None, force: bool,
         claim_timeout: float, model: str | None, device: str, precisions: list[str], batch_size: int, json_out: bool,
         quiet: bool, compile: bool = False) -> None:  # fmt: skip
    """Shared body of every batch command: plan, run with a progress bar, report."""
    from vidtwin_cli.batch.jobs import WorkerSpec
    from vidtwin_cli.batch.local import LocalPool
    from vidtwin_cli.batch.ray_backend import RayPool
    from vidtwin_cli.batch.runner import plan_local, plan_ray, run_batch

    precision = precisions[0]  # the workers' session; bench adds one per further precision
    kind, err = settings.kind, err_console()
    warn = warner(err)

    index, count = parse_shard(shard) if shard else (0, 1)
    pairs = plan(src, out_dir, settings.suffix, patterns or settings.patterns, root, (index, count))
    if ray is None:
        devices, threads = plan_local(device, precisions, workers, threads)
        spec = WorkerSpec(settings, model, device, precision, batch_size, threads, compile)
        backend: LocalPool | RayPool = LocalPool(spec, devices)
    else:
        gpu = plan_ray(device, precisions)
        spec = WorkerSpec(settings, model, device, precision, batch_size, threads or RAY_THREADS, compile)
        backend = RayPool(spec, ray, workers, gpu, warn)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest or out_dir / f"batch-{kind}{f'-{index}of{count}' if shard else ''}.jsonl"

    claims = Claims(claim_timeout)
    try:
        log = JobLog(manifest, warn, claims)
        with progress_bar(err, quiet, unit="files") as bars:
            task = bars.add_task(kind, total=len(pairs))
            started, frames = time.perf_counter(), 0

            def on_frames(n: int) -> None:
                nonlocal frames
                frames += n
                bars.update(task, description=f"{kind} {frames / (time.perf_counter() - started):.1f} frames/s")

            def on_file(record: JobRecord, state: str) -> None:
                bars.advance(task)
                if state == "failed" and not quiet:
                    err.print(f"failed: {record.error}", markup=False, soft_wrap=True)

            summary = run_batch(pairs, spec, backend, log, claims, Path(os.path.abspath(out_dir)), force=force,
                                on_file=on_file, on_frames=on_frames, warn=warn)  # fmt: skip
    except Interrupted as stop:  # Ctrl-C, SIGTERM, SIGHUP: finished files stay done in the manifest
        raise stop.keeping("rerun the same command to resume") from None
    finally:
        claims.close()
    facts = {"backend": "ray" if ray else "local", "threads_per_worker": spec.threads, "manifest": str(manifest)}
    _report(summary, facts, json_out, quiet)


def _report(summary: BatchSummary, extra: dict, json_out: bool, quiet: bool) -> None:
    result, manifest = {**summary.to_dict(), **extra}, extra["manifest"]
    if json_out:
        print_json(result)
    elif not quiet:
        ratio = f" ({result['compression_ratio']:.1f}x)" if result["compression_ratio"] else ""
        err_console().print(
            f"{summary.command}: {summary.ok} done, {summary.skipped} skipped, {summary.failed} failed"
            f"{f', {summary.others} by other processes' if summary.others else ''} of "
            f"{summary.files} files; {summary.input_bytes:,} -> {summary.output_bytes:,} bytes{ratio}; "
            f"{summary.wall_s:.1f} s; manifest {manifest}", markup=False, soft_wrap=True)  # fmt: skip
    if summary.failed:
        raise RuntimeFailure(f"{summary.failed} of {summary.files} files failed (errors in {manifest}); "
                             "rerun the same command to retry them")  # fmt: skip


@app.command("encode")
def encode(
    src: SrcArgument,
    out_dir: OutDirOption,
    manifest: ManifestOption = None,
    glob: GlobOption = None,
    root: RootOption = None,
    shard: ShardOption = None,
    workers: WorkersOption = None,
    threads: ThreadsOption = None,
    ray: RayOption = None,
    force: ForceOption = False,
    claim_timeout: ClaimTimeoutOption = DEFAULT_TIMEOUT_S,
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
    start: StartOption = 0.0,
    duration: DurationOption = None,
    frames: FramesOption = None,
    strict: StrictOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode every video under SRC to OUT_DIR/<same path>.vtw; rerun to resume."""
    from vidtwin_cli.batch.jobs import EncodeSettings
    from vidtwin_cli.codec.options import EncodeOptions
    from vidtwin_cli.video.io import Trim

    options = EncodeOptions(fit, dtype, sample, seed, quality, step, keyint, audio=not no_audio,
                            trim=Trim(start, duration, frames), strict=strict, refine=refine)
    _run(EncodeSettings(options), src, out_dir, manifest, glob, root, shard, workers, threads, ray, force,
         claim_timeout, model, device, [precision], batch_size, json_out, quiet, compile)  # fmt: skip


@app.command("decode")
def decode(
    src: SrcArgument,
    out_dir: OutDirOption,
    manifest: ManifestOption = None,
    glob: GlobOption = None,
    root: RootOption = None,
    shard: ShardOption = None,
    workers: WorkersOption = None,
    threads: ThreadsOption = None,
    ray: RayOption = None,
    force: ForceOption = False,
    claim_timeout: ClaimTimeoutOption = DEFAULT_TIMEOUT_S,
    model: ModelOption = None,
    device: DeviceOption = AUTO,
    precision: PrecisionOption = AUTO,
    batch_size: BatchOption = 8,
    compile: CompileOption = False,
    only: OnlyOption = None,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    ext: Annotated[str, typer.Option("--ext", help="Output container, by file extension (mp4, mkv, mov, webm).")] = "mp4",
    force_model: Annotated[bool, typer.Option("--force-model", help="Decode files made with other weights than --model (warns).")] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Decode every .vtw under SRC to OUT_DIR/<same path>.<ext>; rerun to resume."""
    from vidtwin_cli.batch.jobs import DecodeSettings
    from vidtwin_cli.codec.options import DecodeOptions, VideoOutput

    options = DecodeOptions(only, force_model)
    if not ext.isalnum():
        raise UsageError(f"--ext {ext!r} must be a bare extension such as mp4 or mkv")
    # A bad --codec/--crf stops the batch here, before it starts, not in every file.
    settings = DecodeSettings(options, VideoOutput(codec, crf), suffix=f".{ext.lower()}")
    _run(settings, src, out_dir, manifest, glob, root, shard, workers, threads, ray, force, claim_timeout, model, device,
         [precision], batch_size, json_out, quiet, compile)  # fmt: skip


@app.command("bench")
def bench(
    src: SrcArgument,
    out_dir: OutDirOption,
    manifest: ManifestOption = None,
    glob: GlobOption = None,
    root: RootOption = None,
    shard: ShardOption = None,
    workers: WorkersOption = None,
    threads: ThreadsOption = None,
    ray: RayOption = None,
    force: ForceOption = False,
    claim_timeout: ClaimTimeoutOption = DEFAULT_TIMEOUT_S,
    model: ModelOption = None,
    device: DeviceOption = AUTO,
    precision: Annotated[list[str] | None, typer.Option(
        "--precision", help="auto, fp32, bf16, fp16 (CUDA); repeatable (default auto).")] = None,
    batch_size: BatchOption = 1,
    fit: BenchFitOption = "tile",
    dtype: BenchDtypeOption = ENTROPY,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Timed runs per precision.")] = 1,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", help="libx264, libx265, or none; repeatable.")] = None,
    lpips: Annotated[str, typer.Option("--lpips", help="LPIPS net: alex, vgg, or off.")] = "alex",
    lpips_every: Annotated[int, typer.Option("--lpips-every", min=1, help="LPIPS on every n-th frame.")] = 1,
    rd: Annotated[bool, typer.Option("--rd", help="Sweep rates: entropy qualities, every raw dtype, baseline CRFs.")] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Benchmark every video under SRC: OUT_DIR/<same path>.bench.json, as `vidtwin bench VIDEO --json`."""
    import torch

    from vidtwin_cli.batch.bench_job import BenchSettings
    from vidtwin_cli.bench.baseline import BASELINE_CODECS
    from vidtwin_cli.bench.lpips_weights import check_lpips_net
    from vidtwin_cli.bench.video import VideoBenchOptions
    from vidtwin_cli.codec.runtime import precision_name, resolve_device

    baselines = tuple(BASELINE_CODECS) if baseline is None else tuple(b for b in baseline if b != NO_BASELINE)
    if unknown := [b for b in baselines if b not in BASELINE_CODECS]:
        raise UsageError(f"--baseline {unknown[0]!r} is not one of {', '.join([*BASELINE_CODECS, NO_BASELINE])}")
    check_lpips_net(lpips)
    VideoBenchOptions(fit, dtype, repeat)  # checks --fit / --dtype / --repeat as `vidtwin bench` does
    planned = torch.device("cuda") if device.startswith("cuda") else resolve_device(device)  # Ray: the actors' kind
    precisions = list(dict.fromkeys(precision_name(p, planned) for p in precision or [AUTO]))
    settings = BenchSettings(tuple(precisions), fit, dtype, repeat, baselines, rd, lpips, lpips_every)
    _run(settings, src, out_dir, manifest, glob, root, shard, workers, threads, ray, force, claim_timeout, model, device,
         precisions, batch_size, json_out, quiet)  # fmt: skip
