"""Benchmark on a real video: the codec pipeline end to end, its rate per latent dtype, quality at
source size, speed and memory per precision, and x264/x265 at the same bytes (docs/bench.md).

Encoding goes through `pipeline.encode_video` (latents stored as fp32, then re-stored in each latent
dtype without running the model again); decoding is `pipeline.decoded_frames`, the generator behind
`vidtwin decode`, whose frames go to the metrics instead of a video file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.bench.bdrate import rd_bd_rates
from vidtwin_cli.bench.baseline import RD_PRESETS, available_codecs, decode_stream, encode_at_bytes, encode_frames, unavailable
from vidtwin_cli.bench.speed import PeakMemory, report_header, synthetic_clips
from vidtwin_cli.vtw.container import VtwFigures, open_vtw, read_vtw, write_vtw
from vidtwin_cli.vtw.entropy import DEFAULT_KEYINT, DEFAULT_QUALITY, latent_sigma, step_for_quality
from vidtwin_cli.vtw.header import ENTROPY, LATENT_DTYPES, check_latent_dtype
from vidtwin_cli.errors import UsageError
from vidtwin_cli.bench.metrics import VideoQuality, compare, json_ready, mse, psnr_from_mse
from vidtwin_cli.bench.resample import TIME_FACTORS, ResampleGrid, resampled_frames
from vidtwin_cli.codec.options import EncodeOptions
from vidtwin_cli.codec.pipeline import Stopwatch, decoded_frames, encode_video
from vidtwin_cli.codec.runtime import ModelRunner
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.video.info import VideoInfo, check_fit
from vidtwin_cli.video.io import Trim, VideoReader, VideoWriter

log = logging.getLogger(__name__)

RD_CRFS = (18, 23, 28, 33, 38, 43, 48)
RD_QUALITIES = (3, 5, 7, 9, 11)  # entropy-coded points of the RD sweep (--quality)
STORAGES = (ENTROPY, *LATENT_DTYPES)  # every way a .vtw can store the same latents


@dataclass(frozen=True)
class VideoBenchOptions:
    """What to measure on each input video."""

    fit: str = "tile"
    dtype: str = ENTROPY  # latent storage whose decode is measured (and whose size the baselines match)
    repeat: int = 1  # timed encode+decode runs per precision; quality is measured on the first
    batch_size: int = 1
    baselines: tuple[str, ...] = ("libx264", "libx265")  # those this PyAV build lacks are skipped
    tolerance: float = 0.05  # baseline size within ±5 % of the .vtw
    rd: bool = False  # also sweep rates (entropy qualities in RD_QUALITIES, every raw dtype; baseline CRFs in RD_CRFS
    # at each of RD_PRESETS)
    lpips: nn.Module | None = None
    lpips_every: int = 1
    refine: int = 0  # encoder-side latent search steps (EncodeOptions.refine)

    def __post_init__(self) -> None:
        check_fit(self.fit)
        if self.fit == "crop":
            raise UsageError("bench compares at source size; --fit crop changes the frame, use tile or resize")
        check_latent_dtype(self.dtype)
        if self.repeat < 1:
            raise UsageError("--repeat must be >= 1")


def restore(src: Path, dst: Path, dtype: str, quality: int = DEFAULT_QUALITY, clock: Stopwatch | None = None) -> int:
    """Re-store the latents of `src` in another latent dtype (entropy: at `quality`); returns the new file's bytes.

    `clock` times the writing alone (quantising, coding, the file), as `vidtwin encode` spends it after the model.

    Entropy coding takes its step from the first clip, as `vidtwin encode` does; the file keeps no audio
    (every storage is compared on latents alone).
    """
    vtw = read_vtw(src)
    coding: dict = {"step": None, "keyint": None}
    if dtype == ENTROPY:
        first = vtw.latents.select(slice(0, vtw.header.tiles_per_clip))
        coding = {"step": step_for_quality(quality, latent_sigma(first) or 1.0), "keyint": DEFAULT_KEYINT}
    restored = dataclasses.replace(vtw, header=dataclasses.replace(vtw.header, dtype=dtype, **coding))
    with clock.timing() if clock else contextlib.nullcontext():
        return write_vtw(dst, restored)


def _quality(cfg_frames: int, tile: int | None, options: VideoBenchOptions, device: torch.device) -> VideoQuality:
    return VideoQuality(cfg_frames, tile, options.lpips, options.lpips_every, device=device)


def _warm_up(runner: ModelRunner) -> None:
    """One synthetic clip through encode and decode, so first-call costs stay out of the timings."""
    runner.decode(runner.encode(synthetic_clips(runner.config.clip_shape)))


def bench_video(
    src: Path,
    sessions: dict[str, ModelSession],
    workdir: Path,
    options: VideoBenchOptions,
    progress: Progress | None = None,
    name: Path | None = None,
) -> dict:
    """Benchmark one video with one session per precision (precisions interleaved per repetition).

    `name` is what the report calls the input when `src` is a stand-in for it (a trimmed copy)."""
    memory = PeakMemory(next(iter(sessions.values())).device)
    runs: dict[str, dict] = {}
    encode_s: dict[str, list[float]] = {p: [] for p in sessions}
    decode_s: dict[str, list[float]] = {p: [] for p in sessions}
    for p, session in sessions.items():
        _warm_up(session.load()[1])
    stem = Path(src).stem
    for rep in range(options.repeat):
        for p, session in sessions.items():
            loaded, runner = session.load()
            memory.reset()
            stored = workdir / f"{stem}.{p}.fp32.vtw"
            encode_s[p].append(encode_video(src, stored, session, EncodeOptions(options.fit, "fp32", refine=options.refine)).seconds)
            measured = workdir / f"{stem}.{p}.{options.dtype}.vtw"
            restore(stored, measured, options.dtype)
            clock = Stopwatch()
            with open_vtw(measured) as reader:
                frames = decoded_frames(reader, runner, clock=clock)
                if rep == 0:
                    tile = loaded.config.image_size if options.fit == "tile" else None
                    quality = _quality(loaded.config.frames, tile, options, session.device)
                    runs[p] = {"quality": compare(src, frames, quality)}
                else:
                    for _ in frames:
                        pass
            decode_s[p].append(clock.seconds)
            runs[p]["peak_rss_mib"] = max(runs[p].get("peak_rss_mib", 0.0), memory.peak_rss_mib())
            if session.device.type == "cuda":
                runs[p]["peak_cuda_mib"] = max(runs[p].get("peak_cuda_mib", 0.0), memory.peak_cuda_mib())
            if progress:
                progress(1)
    first = next(iter(sessions))
    cfg = sessions[first].load()[0].config
    reference = workdir / f"{stem}.{first}.fp32.vtw"
    with open_vtw(reference) as reader:
        header = reader.header
    info, clips = header.video, header.clips
    results = []
    for p in sessions:
        enc, dec = encode_s[p], decode_s[p]
        results.append({
            "precision": p,
            "encode_s": {"min": min(enc), "median": float(np.median(enc)), "runs": enc},
            "decode_s": {"min": min(dec), "median": float(np.median(dec)), "runs": dec},
            "frames_per_s": {"encode": info.frame_count / float(np.median(enc)),
                             "decode": info.frame_count / float(np.median(dec))},
            "seconds_per_clip": {"encode": float(np.median(enc)) / clips, "decode": float(np.median(dec)) / clips},
            **runs[p],
        })  # fmt: skip
    rate = _rates(reference, workdir, stem)
    target = rate[options.dtype]["bytes"]
    out = {
        "input": str(name or src),
        "video": {"width": info.width, "height": info.height, "fps": float(info.fps), "frames": info.frame_count,
                  "duration_s": info.duration, "clips": clips, "tiles_per_clip": header.tiles_per_clip},
        "fit": options.fit,
        "refine": options.refine,
        "latent_dtype": options.dtype,
        "latent_values_per_clip": header.tiles_per_clip * cfg.latent_values,
        "compression_rate": cfg.compression_rate,
        "rate": rate,
        "runs": results,
        "coding_share": _coding_share(rate, results),
        "baselines": [_baseline(src, codec, target, info.duration, cfg.frames, options, sessions[first].device, progress)
                      for codec in options.baselines if codec in available_codecs(info.width)],
        "skipped_baselines": {codec: why for codec in options.baselines if (why := unavailable(codec, info.width))},
        "resample": _resample_baseline(src, info, clips * header.tiles_per_clip * cfg.latent_values, cfg.frames,
                                       options, sessions[first].device, progress),
    }  # fmt: skip
    if options.rd:
        out["rd"] = _rd_sweep(src, reference, workdir, stem, info, sessions[first], options, progress)
        out["bd_rate"] = {name: rd_bd_rates(out["rd"], name) for name in out["rd"] if name.startswith("libx264")}
    return out


def _kbps(nbytes: int, duration: float) -> float | None:
    return nbytes * 8 / 1000 / duration if duration > 0 else None


def _rates(reference: Path, workdir: Path, stem: str) -> dict:
    """Bytes and bitrate of the same latents in every storage (entropy at the default quality, raw dtypes),
    and the seconds storing them costs: `write_s` (from float latents to the file) and `read_s` (opening,
    which checks every chunk, and reading every clip back to float latents)."""
    rate = {}
    for dtype in STORAGES:
        path = workdir / f"{stem}.rate.{dtype}.vtw"
        write, read = Stopwatch(), Stopwatch()
        nbytes = restore(reference, path, dtype, clock=write)
        with read.timing(), open_vtw(path) as reader:
            for _ in reader.iter_clips():
                pass
        f = VtwFigures.of(reader.header, nbytes)
        rate[dtype] = {"bytes": nbytes, "kbit_per_s": f.bitrate_bps / 1000 if f.bitrate_bps else None,
                       "compression_vs_raw": f.compression_vs_raw, "overhead_bytes": f.overhead_bytes,
                       "bits_per_value": f.bits_per_value, "write_s": write.seconds, "read_s": read.seconds}  # fmt: skip
    return rate


def _coding_share(rate: dict, runs: list[dict]) -> dict:
    """Storage time against the model's: per storage, (write + read seconds) / (median encode + decode seconds)
    of each precision's run."""
    return {p["precision"]: {dtype: (r["write_s"] + r["read_s"]) / (p["encode_s"]["median"] + p["decode_s"]["median"])
                             for dtype, r in rate.items()} for p in runs}  # fmt: skip


def _baseline(src: Path, codec: str, target: int, duration: float, clip_frames: int, options: VideoBenchOptions,
              device: torch.device, progress: Progress | None) -> dict:  # fmt: skip
    start = time.perf_counter()
    stream, search = encode_at_bytes(src, target, codec, options.tolerance)
    seconds = time.perf_counter() - start
    quality = compare(src, decode_stream(stream), _quality(clip_frames, None, options, device))
    if progress:
        progress(1)
    return {"codec": codec, **search, "pix_fmt": stream.pix_fmt, "kbit_per_s": _kbps(stream.bytes, duration),
            "search_seconds": seconds, "quality": quality}  # fmt: skip


def _resample_baseline(src: Path, info: VideoInfo, budget: int, clip_frames: int, options: VideoBenchOptions,
                       device: torch.device, progress: Progress | None) -> dict:  # fmt: skip
    """The model's latent value count spent on a downsampled copy of the video (`bench.resample`):
    every time/space split in TIME_FACTORS is tried, and the best by pooled PSNR is measured in full."""
    tried = []
    for t in TIME_FACTORS:
        grid = ResampleGrid.for_budget(info.width, info.height, info.frame_count, budget, t)
        with VideoReader(src) as reference, VideoReader(src) as video:
            errors = [mse(ref, out) for ref, out in zip(reference, resampled_frames(video, grid))]
        tried.append((psnr_from_mse(float(np.mean(errors))), grid))
    best = max(tried, key=lambda pair: pair[0])[1]
    with VideoReader(src) as video:
        quality = compare(src, resampled_frames(video, best), _quality(clip_frames, None, options, device))
    if progress:
        progress(1)
    return {"codec": "bicubic", "values": best.values, "model_values": budget, "time_factor": best.time_factor,
            "width": best.width, "height": best.height, "quality": quality,
            "tried": [{"time_factor": g.time_factor, "width": g.width, "height": g.height, "values": g.values,
                       "psnr": p} for p, g in tried]}  # fmt: skip


def _rd_sweep(src: Path, reference: Path, workdir: Path, stem: str, info: VideoInfo, session: ModelSession,
              options: VideoBenchOptions, progress: Progress | None) -> dict:  # fmt: skip
    """Rate–distortion points: VidTwin entropy-coded over RD_QUALITIES and raw in every dtype, each baseline over
    RD_CRFS at each of RD_PRESETS (curves named "libx264 medium" etc.)."""
    loaded, runner = session.load()
    cfg, duration = loaded.config, info.duration
    tile = cfg.image_size if options.fit == "tile" else None

    def point(nbytes: int, measured: dict, **extra: object) -> dict:
        lp = measured["lpips"]["mean"] if measured["lpips"] else None
        return {**extra, "bytes": nbytes, "kbit_per_s": _kbps(nbytes, duration), "psnr": measured["psnr"]["pooled"],
                "ssim": measured["ssim"]["mean"], "lpips": lp}  # fmt: skip

    curves: dict[str, list] = {"vidtwin": [], "vidtwin raw": []}  # entropy-coded qualities; raw dtypes
    points = [(ENTROPY, quality) for quality in RD_QUALITIES] + [(dtype, None) for dtype in LATENT_DTYPES]
    for dtype, quality in points:
        path = workdir / f"{stem}.rd.{dtype}{quality or ''}.vtw"
        nbytes = restore(reference, path, dtype, quality or DEFAULT_QUALITY)
        with open_vtw(path) as reader:
            q = compare(src, decoded_frames(reader, runner), _quality(cfg.frames, tile, options, session.device))
        extra = {"quality": quality, "step": reader.header.step} if quality else {}
        curves["vidtwin" if quality else "vidtwin raw"].append(point(nbytes, q, latent_dtype=dtype, **extra))
        if progress:
            progress(1)
    for codec in options.baselines:
        if codec not in available_codecs(info.width):
            continue
        for preset in RD_PRESETS:
            curve = curves[f"{codec} {preset}"] = []
            for crf in RD_CRFS:
                with VideoReader(src) as video:
                    stream = encode_frames(video, video.fps, codec, float(crf), preset=preset)
                q = compare(src, decode_stream(stream), _quality(cfg.frames, None, options, session.device))
                curve.append(point(stream.bytes, q, crf=crf, preset=preset))
                if progress:
                    progress(1)
    return curves


def trimmed_copy(src: Path, trim: Trim, dst: Path) -> Path:
    """The `trim`med part of `src` as a lossless FFV1 file `dst`, for every later reader (model, metrics,
    baselines) to see the same frames. `src` is read twice, one frame in memory at a time: the first read
    learns the part's exact timing, which the writer needs before its first frame."""
    with VideoReader(src, trim=trim) as video:
        for _ in video:
            pass
        info = video.info
    with VideoReader(src, trim=trim) as video, VideoWriter(dst, info, info.width, info.height, "ffv1") as out:
        for frame in video:
            out.write(frame)
    return dst


def video_steps(options: VideoBenchOptions, precisions: int) -> int:
    """Progress steps `bench_video` reports for one input (for a progress total)."""
    codecs = len([c for c in options.baselines if c in available_codecs()])
    rd_points = len(RD_QUALITIES) + len(LATENT_DTYPES) + codecs * len(RD_PRESETS) * len(RD_CRFS)
    return options.repeat * precisions + codecs + 1 + (rd_points if options.rd else 0)


def run_videos(
    inputs: list[Path],
    spec: str | None,
    device: str,
    precisions: list[str],
    options: VideoBenchOptions,
    workdir: Path,
    progress: Progress | None = None,
    warn: Warn | None = None,
    trim: Trim = Trim(),
) -> dict:
    """The report for real videos: one session per precision, loaded (and timed) once for all inputs.

    With a `trim`, each input's part is first copied into `workdir` (`trimmed_copy`: a bad input fails
    before any model loads); the report still names the inputs as given."""
    parts = inputs if trim.whole else [trimmed_copy(src, trim, workdir / f"{src.stem}.{n}.part.mkv")
                                       for n, src in enumerate(inputs)]  # fmt: skip
    sessions = {p: ModelSession(spec, device, p, options.batch_size, warn or log.warning) for p in precisions}
    load_seconds = {}
    for p, session in sessions.items():
        start = time.perf_counter()
        session.load()
        load_seconds[p] = time.perf_counter() - start
    first = next(iter(sessions.values()))
    header = report_header("video", first.load()[0], first.device, load_seconds)
    return json_ready({**header, "inputs": [bench_video(part, sessions, workdir, options, progress, name=src)
                                            for src, part in zip(inputs, parts)]})  # fmt: skip
