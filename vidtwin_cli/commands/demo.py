"""`vidtwin demo`: the main job on the bundled sample clip and default model, offline."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vidtwin_cli.atomic import Existing
from vidtwin_cli.console import err_console, print_json, report_kept, task_progress, warner
from vidtwin_cli.defaults import AUTO
from vidtwin_cli.commands.options import (
    DeviceOption, JsonOption, ModelOption, NoOverwriteOption, OverwriteOption, PrecisionOption, QuietOption,
)  # fmt: skip


def command(
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Where sample.vtw and sample.decoded.mp4 go (created if missing; default: a new temporary folder).")] = None,
    model: ModelOption = None,
    device: DeviceOption = AUTO,
    precision: PrecisionOption = AUTO,
    overwrite: OverwriteOption = False,
    never: NoOverwriteOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode and decode the bundled sample clip; print the PSNR and the compression achieved."""
    from vidtwin_cli import api  # torch and PyAV load here, not when --help is built
    from vidtwin_cli.bench.metrics import VideoQuality, compare
    from vidtwin_cli.codec.weights import SAMPLE_CLIP
    from vidtwin_cli.video.io import VideoReader

    err = err_console()
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="vidtwin-demo-"))  # kept: the files are there to be played
    vtw, decoded = out_dir / "sample.vtw", out_dir / "sample.decoded.mp4"
    existing = Existing(overwrite, never)
    if [p for p in (vtw, decoded) if existing.skip(p)]:
        report_kept(out_dir, json_out, quiet)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    session = api.ModelSession(model, device, precision, batch_size=8, warn=warner(err))
    with task_progress(err, "encode", quiet) as task:
        enc = api.encode(SAMPLE_CLIP, vtw, model=session, progress=task.advance, on_start=task.start)
    with task_progress(err, "decode", quiet) as task:
        dec = api.decode(vtw, decoded, model=session, progress=task.advance, on_start=task.start)
    loaded, _ = session.load()
    with VideoReader(decoded) as frames:  # the video as written, encoder loss included
        quality = compare(SAMPLE_CLIP, frames, VideoQuality(loaded.config.frames))
    result = {
        "model": loaded.spec,
        "source": str(SAMPLE_CLIP),
        "source_bytes": SAMPLE_CLIP.stat().st_size,
        "vtw": str(vtw),
        "vtw_bytes": enc.bytes,
        "decoded": str(decoded),
        "frames": enc.frames,
        "size": [enc.width, enc.height],
        "compression_rate": enc.compression_rate,
        "compression_vs_raw": enc.compression_vs_raw,
        "compression_vs_source": SAMPLE_CLIP.stat().st_size / enc.bytes,
        "folder": str(out_dir),
        "bitrate_kbps": enc.bitrate_kbps,
        "psnr_db": quality["psnr"]["pooled"],
        "ssim": quality["ssim"]["mean"],
        "encode_seconds": enc.seconds,
        "decode_seconds": dec.seconds,
    }
    if json_out:
        print_json(result)
        return
    table = Table(title="vidtwin demo", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in (
        ("model", result["model"]),
        ("clip", f"{SAMPLE_CLIP.name}: {result['frames']} frames {enc.width}x{enc.height}"),
        (".vtw", f"{vtw} ({result['vtw_bytes']:,} bytes, {result['bitrate_kbps']:.0f} kbit/s)"),
        ("compression", f"{100 * result['compression_rate']:.2f}% of the input values (paper's rate); "
                        f"{result['compression_vs_raw']:.0f}x smaller than raw RGB, "
                        f"{result['compression_vs_source']:.1f}x smaller than the sample's mp4"),
        ("decoded", str(decoded)),
        ("PSNR", f"{result['psnr_db']:.2f} dB"),
        ("SSIM", f"{result['ssim']:.4f}"),
        ("time", f"encode {result['encode_seconds']:.1f} s, decode {result['decode_seconds']:.1f} s"),
    ):
        table.add_row(key, value)
    err.print(table)
    if not quiet:
        err.print(f"files written to {out_dir}/ (play sample.decoded.mp4 there)", markup=False, soft_wrap=True)
