"""`vidtwin bench`: quality, rate, speed and memory, side by side with x264/x265 (docs/bench.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vidtwin_cli.console import TaskProgress, err_console, print_json, progress_bar, warner
from vidtwin_cli.defaults import AUTO, ENTROPY
from vidtwin_cli.errors import UsageError
from vidtwin_cli.bench.plotting import plot_report, require_matplotlib
from vidtwin_cli.atomic import Existing
from vidtwin_cli.commands.options import (
    BatchOption, BenchDtypeOption, BenchFitOption, DeviceOption, DurationOption, FramesOption, JsonOption, ModelOption,
    NoOverwriteOption, OverwriteOption, QuietOption, RefineOption, StartOption,
)  # fmt: skip


def command(
    inputs: Annotated[list[Path] | None, typer.Argument(help="Video files to benchmark (none with --synthetic).")] = None,
    model: ModelOption = None,
    preset: Annotated[str | None, typer.Option("--preset", help="With --synthetic: a preset, random weights.")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Time the model on generated clips; no video.")] = False,
    device: DeviceOption = AUTO,
    precision: Annotated[list[str] | None, typer.Option(
        "--precision", help="auto, fp32, bf16, fp16 (CUDA); repeatable (default auto).")] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, help="Timed runs per precision (3 synthetic, 1 video).")] = None,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first (synthetic).")] = 1,
    clips: Annotated[int, typer.Option("--clips", min=1, help="Clips per synthetic run.")] = 1,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch.")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="With --synthetic: torch.compile the ST blocks.")] = False,
    batch_size: BatchOption = 1,
    fit: BenchFitOption = "tile",
    dtype: BenchDtypeOption = ENTROPY,
    baseline: Annotated[list[str] | None, typer.Option("--baseline", help="libx264, libx265; repeatable.")] = None,
    lpips: Annotated[str, typer.Option("--lpips", help="LPIPS net: alex, vgg, or off.")] = "alex",
    lpips_every: Annotated[int, typer.Option("--lpips-every", min=1, help="LPIPS on every n-th frame.")] = 1,
    refine: RefineOption = 0,
    rd: Annotated[bool, typer.Option("--rd", help="Sweep rates: entropy qualities, every raw dtype, baseline CRFs.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the results (needs matplotlib).")] = None,
    start: StartOption = 0.0,
    duration: DurationOption = None,
    frames: FramesOption = None,
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Measure quality, rate, speed and memory of the model, and x264/x265 at the same size."""
    import torch  # torch, PyAV and numpy load here, not when --help is built

    from vidtwin_cli.bench.baseline import BASELINE_CODECS
    from vidtwin_cli.bench.lpips_weights import check_lpips_net, lpips_for
    from vidtwin_cli.bench.speed import run_synthetic
    from vidtwin_cli.bench.video import VideoBenchOptions, run_videos, video_steps
    from vidtwin_cli.codec.runtime import PRECISIONS, precision_name, resolve_device
    from vidtwin_cli.video.io import Trim

    if unknown := [p for p in precision or [] if p not in (*PRECISIONS, AUTO)]:
        raise UsageError(f"--precision {unknown[0]!r} is not one of {', '.join([*PRECISIONS, AUTO])}")
    if synthetic == bool(inputs):
        raise UsageError("give video inputs, or --synthetic without inputs")
    if preset and (model or not synthetic):
        raise UsageError("--preset goes with --synthetic and replaces --model")
    if compile and not synthetic:
        raise UsageError("--compile goes with --synthetic")
    if unknown := [b for b in baseline or [] if b not in BASELINE_CODECS]:
        raise UsageError(f"--baseline {unknown[0]!r} is not one of {', '.join(BASELINE_CODECS)}")
    check_lpips_net(lpips)
    if plot is not None:
        require_matplotlib()
        if Existing(overwrite, never).skip(plot):
            err_console().print(f"{plot}: exists; left as it is (-n), no plot written", markup=False, soft_wrap=True)
            plot = None
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    precisions = list(dict.fromkeys(precision_name(p, dev) for p in precision or [AUTO]))
    err = err_console()
    warn = warner(err)

    with progress_bar(err, quiet, unit="steps") as bars:
        task = TaskProgress(bars, "bench")
        if synthetic:
            task.start((warmup + (repeat or 3)) * len(precisions))
            report = run_synthetic(preset or model, dev, precisions, clips, warmup, repeat or 3, batch_size, task.advance,
                                   warn, compile)
        else:
            options = VideoBenchOptions(fit, dtype, repeat or 1, batch_size, tuple(baseline or BASELINE_CODECS), rd=rd,
                                        lpips=lpips_for(lpips, dev), lpips_every=lpips_every, refine=refine)
            task.start(video_steps(options, len(precisions)) * len(inputs))
            with tempfile.TemporaryDirectory(prefix="vidtwin-bench-") as work:
                report = run_videos(inputs, model, device, precisions, options, Path(work), task.advance, warn,
                                    Trim(start, duration, frames))
    if plot is not None:
        plot_report(report, plot)
    if json_out:
        print_json(report)
    if not quiet:
        for table in tables(report):
            err.print(table)


def _f(x: object, spec: str = ".2f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else str(x if x is not None else "-")


def tables(report: dict) -> list[Table]:
    """Rich tables of a report (medians; min and every run are in the JSON): speed, then per video
    quality and size codec by codec."""
    speed = Table(title=f"speed: {report['model']['spec']} on {report['environment']['device']} (median s)")
    for col in ("precision", "encode", "decode", "frames/s", "GFLOP/s", "of peak", "of sustained", "RSS MiB", "vs fp32 dB"):
        speed.add_column(col, justify="right")
    for r in report.get("speed", []):
        vs = r["vs_fp32"]
        speed.add_row(r["precision"], _f(r["encode_s"]["median"], ".3g"), _f(r["decode_s"]["median"], ".3g"),
                      _f(r["frames_per_s"]["total"], ".3g"), _f(r["gflops_per_s"]["median"], ".1f"),
                      _f(r["ratio_to_peak"]["median"], ".0%"), _f(r["ratio_to_sustained"]["median"], ".0%"),
                      _f(r["peak_rss_mib"], ".0f"), _f(vs and vs["psnr_db"]))  # fmt: skip
    out = [speed]
    for video in report.get("inputs", []):
        for r in video["runs"]:
            speed.add_row(r["precision"], _f(r["encode_s"]["median"], ".3g"), _f(r["decode_s"]["median"], ".3g"),
                          f"{r['frames_per_s']['encode']:.3g}/{r['frames_per_s']['decode']:.3g}", "-", "-", "-",
                          _f(r["peak_rss_mib"], ".0f"), "-")  # fmt: skip
        v = video["video"]
        quality = Table(title=f"{Path(video['input']).name}: {v['width']}x{v['height']}, {v['frames']} frames, "
                              f"latents {video['latent_dtype']}"
                              f"{f', refined {steps} steps' if (steps := video.get('refine')) else ''}")  # fmt: skip
        for col in ("codec", "bytes", "kbit/s", "PSNR", "SSIM", "LPIPS", "flicker", "clip seam", "tile seam"):
            quality.add_column(col, justify="right")
        rate = video["rate"][video["latent_dtype"]]
        rows = [(f"vidtwin {r['precision']}", rate["bytes"], rate["kbit_per_s"], r["quality"]) for r in video["runs"]]
        rows += [(b["codec"] if b["matched"] else f"{b['codec']} (missed size*)", b["bytes"], b["kbit_per_s"], b["quality"])
                 for b in video["baselines"]]  # fmt: skip
        if resample := video.get("resample"):
            rows.append((f"bicubic, {resample['values']:,} values", None, None, resample["quality"]))
        for name, nbytes, kbps, q in rows:
            quality.add_row(name, _f(nbytes, ","), _f(kbps, ".0f"), _f(q["psnr"]["pooled"]), _f(q["ssim"]["mean"], ".3f"),
                            _f(q["lpips"] and q["lpips"]["mean"], ".3f"), _f(q["flicker_rmse"], ".1f"),
                            _f(q["clip_seam"] and q["clip_seam"]["ratio"]), _f(q["tile_seam"] and q["tile_seam"]["ratio"]))  # fmt: skip
        notes = [f"{codec} left out: {why}" for codec, why in video.get("skipped_baselines", {}).items()]
        if not all(b["matched"] for b in video["baselines"]):
            notes.append("* no setting of the encoder reached the .vtw's size within the tolerance (JSON: matched false)")
        quality.caption = "\n".join(notes) or None
        out.append(quality)
        out.append(_coding(video))
        if "rd" in video:
            out += [_rd(video), _bd_rates(video)]
    return out


def _coding(video: dict) -> Table:
    """Bytes and storage seconds of the same latents in each storage, against the model's seconds."""
    table = Table(title=f"{Path(video['input']).name}: storage of the same latents (s: write, read; share of model time)")
    precisions = list(video["coding_share"])
    for col in ("storage", "bytes", "bits/value", "write s", "read s", *(f"share {p}" for p in precisions)):
        table.add_column(col, justify="right")
    for dtype, r in video["rate"].items():
        shares = [_f(video["coding_share"][p][dtype], ".2%") for p in precisions]
        table.add_row(dtype, _f(r["bytes"], ","), _f(r["bits_per_value"], ".3g"), _f(r["write_s"], ".3f"),
                      _f(r["read_s"], ".3f"), *shares)  # fmt: skip
    return table


def _rd(video: dict) -> Table:
    """Every rate–distortion point, curve by curve, and the bicubic baseline at the model's value count."""
    table = Table(title=f"{Path(video['input']).name}: rate-distortion (every byte of every file)")
    for col in ("curve", "point", "bytes", "kbit/s", "PSNR", "SSIM", "LPIPS"):
        table.add_column(col, justify="right")
    for name, points in video["rd"].items():
        for p in points:
            label = (f"q{p['quality']}" if p.get("quality") else p.get("latent_dtype") or f"crf {p['crf']}")
            table.add_row(name, label, _f(p["bytes"], ","), _f(p["kbit_per_s"], ".0f"), _f(p["psnr"]),
                          _f(p["ssim"], ".3f"), _f(p["lpips"], ".3f"))  # fmt: skip
    if resample := video.get("resample"):
        q = resample["quality"]
        table.add_row("bicubic", f"{resample['values']:,} values", "-", "-", _f(q["psnr"]["pooled"]),
                      _f(q["ssim"]["mean"], ".3f"), _f(q["lpips"] and q["lpips"]["mean"], ".3f"))  # fmt: skip
        table.caption = "bicubic: the model's latent value count spent on a resampled video; it counts values, not bytes"
    return table


def _bd_rates(video: dict) -> Table:
    """BD-rate of each curve against each x264 curve (percent bytes at equal quality; negative is better)."""
    table = Table(title=f"{Path(video['input']).name}: BD-rate, % bytes at equal quality (negative: fewer bytes)")
    table.add_column("curve", justify="right")
    references = list(video["bd_rate"])
    for ref in references:
        table.add_column(f"vs {ref}: PSNR", justify="right")
        table.add_column("LPIPS", justify="right")
    for name in video["rd"]:
        cells = [(video["bd_rate"][ref].get(name) or {}) for ref in references]
        if any(cells):
            table.add_row(name, *[_f(c.get(k), "+.1f") if c else "-" for c in cells for k in ("psnr", "lpips")])
    table.caption = "-: fewer than 4 points, or no quality range in common"
    return table
