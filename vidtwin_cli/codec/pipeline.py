"""The codec's data path: video -> clips -> tiles -> model -> latents -> .vtw, and back.

Every function streams: one clip of frames and its tiles are in memory at a time, latents are
spooled by the container writer, and decoding reads one clip of latents at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models import Latents

from vidtwin_cli.vtw.container import ModelRef, VtwHeader, VtwWriter, describe_vtw, open_vtw
from vidtwin_cli.errors import InputError, ModelError, UsageError
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.runtime import ModelRunner
from vidtwin_cli.video.tiling import clip_frames, frames_to_tiles
from vidtwin_cli.video.info import MAX_SIDE, FitMode, Geometry, VideoInfo
from vidtwin_cli.video.io import DEFAULT_CODEC, VideoReader, VideoWriter, iter_clips
from vidtwin_cli.codec.weights import LoadedModel

log = logging.getLogger(__name__)

Progress = Callable[[int], None] | None


DEFAULT_MAX_SIDE = 8192  # decoded frames beyond this many pixels a side need --max-side (docs/cli.md)


@dataclass(frozen=True)
class VideoOutput:
    """How decoded frames are written: encoder, quality, (for pipes) container format, largest size."""

    codec: str = DEFAULT_CODEC
    crf: int | None = None
    format: str | None = None
    max_side: int = DEFAULT_MAX_SIDE  # pixels; a .vtw claiming larger frames is refused (up to MAX_SIDE)

    def __post_init__(self) -> None:
        if not 1 <= self.max_side <= MAX_SIDE:
            raise UsageError(f"--max-side {self.max_side} is outside 1..{MAX_SIDE} (the .vtw format's limit)")

    def check_size(self, geometry: Geometry, name: str) -> None:
        """Refuse to decode frames larger than `max_side` (a few bytes of .vtw can claim any size)."""
        width, height = geometry.output_size
        if max(width, height) > self.max_side:
            raise InputError(f"{name} decodes to {width}x{height} frames, beyond the {self.max_side}-pixel limit "
                             f"(--max-side {self.max_side}); pass --max-side {max(width, height)} if it is intended")


def model_ref(loaded: LoadedModel) -> ModelRef:
    return ModelRef(loaded.spec, loaded.sha256, loaded.config)


def check_model(loaded: LoadedModel, header: VtwHeader, name: str, force: bool, warn: Callable[[str], None]) -> None:
    """Refuse latents made by other weights (unless `force`, with a warning); other sizes never decode."""
    if loaded.config != header.model.config:
        raise ModelError(f"{name} was made with a different model config than {loaded.spec} "
                         f"(its model: {header.model.spec}); pass the matching --model")
    if loaded.sha256 != header.model.weights_sha256:
        message = (f"{name} was encoded with weights {header.model.weights_sha256[:12]} ({header.model.spec}), "
                   f"but {loaded.spec} has {loaded.sha256[:12]}")
        if not force:
            raise ModelError(f"{message}; pass the matching --model, or --force to decode anyway")
        warn(f"{message}; decoding anyway (--force)")


def encode_video(
    src: Path | str,
    dst: Path | str,
    session: ModelSession,
    *,
    fit: FitMode = "tile",
    dtype: str = "fp16",
    sample: bool = False,
    seed: int | None = None,
    format: str | None = None,
    progress: Progress = None,
    on_start: Callable[[int | None], None] | None = None,
) -> dict:
    """Encode a video file (or "-" with `format`) to a .vtw at `dst` ("-" = stdout); returns a summary.

    `on_start(estimated_frames)` is called once the header is read (for progress totals).
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed if seed is not None else 0) if sample else None
    with VideoReader(src, format) as video:  # a bad input fails here, before the model loads
        loaded, runner = session.load()
        cfg = loaded.config
        geometry = Geometry.plan(video.width, video.height, cfg.image_size, fit)
        if on_start:
            on_start(video.estimated_frames)
        with VtwWriter(dst, model_ref(loaded), geometry, dtype, sampled=sample,
                       seed=seed if sample else None) as writer:  # fmt: skip
            for clip, valid in iter_clips(video, cfg.frames):
                writer.add(runner.encode(frames_to_tiles(clip, geometry), sample=sample, generator=generator))
                if progress:
                    progress(valid)
            nbytes = writer.finish(video.info)
            header = writer.header
    summary = describe_vtw(header, nbytes)
    return {
        "input": str(src),
        "output": str(dst),
        "frames": header.video.frame_count,
        "width": header.video.width,
        "height": header.video.height,
        "fps": float(header.video.fps),
        "clips": header.clips,
        "tiles_per_clip": header.tiles_per_clip,
        "bytes": nbytes,
        "bitrate_kbps": summary["bitrate_bps"] / 1000 if summary["bitrate_bps"] else None,
        "compression_rate": summary["compression_rate"],
        "compression_vs_raw": summary["compression_vs_raw"],
        "latent_dtype": dtype,
        "seconds": time.perf_counter() - started,
    }


def _write_frames(
    dst: Path | str,
    info: VideoInfo,
    geometry: Geometry,
    frames: Iterator[np.ndarray],
    output: VideoOutput,
    progress: Progress,
) -> int:
    """Write decoded frames (H, W, 3), stopping at the source frame count (the last clip is padded)."""
    width, height = geometry.output_size
    written = 0
    with VideoWriter(dst, info, width, height, output.codec, output.crf, output.format) as out:
        for frame in frames:
            if written == info.frame_count:
                break
            out.write(frame)
            written += 1
            if progress:
                progress(1)
    return written


def decoded_frames(runner: ModelRunner, latents: Latents, geometry: Geometry,
                   only: str | None = None) -> Iterator[np.ndarray]:
    """The frames of one clip's latents (all its tiles), decoded one row of tiles at a time."""
    cols = geometry.cols
    rows = (runner.decode(latents.select(slice(r * cols, (r + 1) * cols)), only=only) for r in range(geometry.rows))
    return clip_frames(rows, geometry)


def decode_vtw(
    src: Path | str,
    dst: Path | str,
    session: ModelSession,
    *,
    only: str | None = None,
    output: VideoOutput = VideoOutput(),
    force: bool = False,
    progress: Progress = None,
    on_start: Callable[[int | None], None] | None = None,
) -> dict:
    """Decode a .vtw to a video with the source's frame count, timing and size; returns a summary.

    Without `--model` the session loads the model the file records.
    """
    started = time.perf_counter()
    with open_vtw(src) as reader:
        header = reader.header
        output.check_size(header.geometry, reader.name)
        loaded, runner = session.load(header.model.spec)
        check_model(loaded, header, reader.name, force, session.warn)
        if on_start:
            on_start(header.video.frame_count)
        geometry = header.geometry
        clips = (frame for lat in reader.iter_clips() for frame in decoded_frames(runner, lat, geometry, only))
        frames = _write_frames(dst, header.video, geometry, clips, output, progress)
    width, height = geometry.output_size
    return {"input": str(src), "output": str(dst), "frames": frames, "width": width, "height": height,
            "fps": float(header.video.fps), "only": only, "seconds": time.perf_counter() - started}  # fmt: skip


# ---- cross-reenactment ----------------------------------------------------------------------


def parse_range(text: str, duration: float) -> tuple[float, float]:
    """'START:END' in seconds (either side may be empty) within [0, duration]."""
    start_s, sep, end_s = text.partition(":")
    try:
        start = float(start_s) if start_s else 0.0
        end = float(end_s) if end_s else duration
    except ValueError:
        sep = ""
    if not sep:
        raise InputError(f"--range {text!r} must be START:END in seconds, e.g. 1.5:4")
    if not (0 <= start < end) or start >= duration or end > duration + 1e-6:
        raise InputError(f"--range {text} is outside the dynamics video (0 to {duration:.3f} s) or empty")
    return start, end


def frame_times(info: VideoInfo) -> np.ndarray:
    """Presentation time in seconds of every frame (timestamps for VFR, index / fps otherwise)."""
    if info.pts is not None:
        return np.asarray(info.pts, dtype=np.float64) * float(info.time_base)
    return np.arange(info.frame_count, dtype=np.float64) / float(info.fps)


def _check_pair(a: VtwHeader, b: VtwHeader, name_a: str, name_b: str) -> None:
    if a.model.weights_sha256 != b.model.weights_sha256:
        raise ModelError(f"{name_a} and {name_b} come from different models "
                         f"({a.model.spec} {a.model.weights_sha256[:12]} vs {b.model.spec} {b.model.weights_sha256[:12]})")
    ga, gb = a.geometry, b.geometry
    if (ga.fit, ga.rows, ga.cols) != (gb.fit, gb.rows, gb.cols):
        raise InputError(f"{name_a} and {name_b} have different geometry: {ga.fit} {ga.rows}x{ga.cols} tiles "
                         f"({ga.width}x{ga.height}) vs {gb.fit} {gb.rows}x{gb.cols} tiles ({gb.width}x{gb.height})")


def swap_latents(structure_from: Latents, dynamics_from: Latents) -> Latents:
    """Structure of one clip with the dynamics of another (the decoder input u_S^A + u_D^B)."""
    return Latents(structure_from.structure, dynamics_from.dynamics_x, dynamics_from.dynamics_y)


def swap_vtw(
    a_src: Path | str,
    b_src: Path | str,
    dst: Path | str,
    session: ModelSession,
    *,
    span: str | None = None,
    as_vtw: bool = False,
    dtype: str = "fp16",
    output: VideoOutput = VideoOutput(),
    force: bool = False,
    progress: Progress = None,
    on_start: Callable[[int | None], None] | None = None,
) -> dict:
    """Structure of A with the dynamics of B, on B's timeline.

    A clip index past A's end holds A's last clip. With `span` ('START:END', seconds of B) only
    frames in that span are swapped, the rest is B's own reconstruction (per frame for video output;
    for .vtw output per clip, every clip that overlaps the span).
    """
    started = time.perf_counter()
    with open_vtw(a_src) as a, open_vtw(b_src) as b:
        _check_pair(a.header, b.header, a.name, b.name)
        if not as_vtw:
            output.check_size(b.header.geometry, b.name)
        loaded, runner = session.load(b.header.model.spec)
        check_model(loaded, b.header, b.name, force, session.warn)
        info, geometry, t = b.header.video, b.header.geometry, loaded.config.frames
        if on_start:
            on_start(info.frame_count)
        times = frame_times(info)
        start, end = parse_range(span, info.duration) if span else (-np.inf, np.inf)
        inside = (times >= start) & (times < end)  # per frame of B
        swapped_clips = 0

        def mixed(i: int, lat_b: Latents) -> tuple[Latents, np.ndarray]:
            mask = np.zeros(t, dtype=bool)  # padded tail frames count as outside
            real = inside[i * t : (i + 1) * t]
            mask[: len(real)] = real
            return swap_latents(a.clip(min(i, a.header.clips - 1)), lat_b), mask

        if as_vtw:
            with VtwWriter(dst, b.header.model, geometry, dtype, provenance={
                "swap": {"structure": a.name, "dynamics": b.name, "range": span}}) as writer:  # fmt: skip
                for i, lat_b in enumerate(b.iter_clips()):
                    lat, mask = mixed(i, lat_b)
                    use = bool(mask.any())
                    swapped_clips += use
                    writer.add(lat if use else lat_b)
                    if progress:
                        progress(int(min(t, info.frame_count - i * t)))
                nbytes = writer.finish(info)
            return {"structure": a.name, "dynamics": b.name, "output": str(dst), "frames": info.frame_count,
                    "clips_swapped": swapped_clips, "bytes": nbytes, "seconds": time.perf_counter() - started}

        def clips() -> Iterator[np.ndarray]:
            nonlocal swapped_clips
            for i, lat_b in enumerate(b.iter_clips()):
                lat, mask = mixed(i, lat_b)
                swapped = decoded_frames(runner, lat, geometry) if mask.any() else None
                own = decoded_frames(runner, lat_b, geometry) if not mask.all() else None
                swapped_clips += bool(mask.any())
                for inside_span in mask:  # per frame: the swap where the span says, else B's own
                    frame_swapped = next(swapped) if swapped is not None else None
                    frame_own = next(own) if own is not None else None
                    yield frame_swapped if inside_span else frame_own

        frames = _write_frames(dst, info, geometry, clips(), output, progress)
    return {"structure": a.name, "dynamics": b.name, "output": str(dst), "frames": frames,
            "clips_swapped": swapped_clips, "range": span, "seconds": time.perf_counter() - started}  # fmt: skip
