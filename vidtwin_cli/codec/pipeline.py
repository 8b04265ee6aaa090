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

from vidtwin_cli.atomic import STDIO
from vidtwin_cli.video.audio import read_audio
from vidtwin_cli.vtw.container import (
    CodedReader, CodedWriter, EntropyCoding, ModelRef, Storage, VtwHeader, VtwReader, VtwWriter, describe_vtw, open_vtw,
    vtw_writer,
)  # fmt: skip
from vidtwin_cli.errors import InputError, ModelError
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.video.tiling import frames_to_tiles, tiles_to_frames
from vidtwin_cli.video.info import FitMode, Geometry, VideoInfo
from vidtwin_cli.video.io import DEFAULT_CODEC, VideoReader, VideoWriter, iter_clips
from vidtwin_cli.codec.weights import LoadedModel

log = logging.getLogger(__name__)

Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class VideoOutput:
    """How decoded frames are written: encoder, quality and (for pipes) container format."""

    codec: str = DEFAULT_CODEC
    crf: int | None = None
    format: str | None = None


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
    dtype: Storage = EntropyCoding(),
    sample: bool = False,
    seed: int | None = None,
    format: str | None = None,
    audio: bool = True,
    progress: Progress = None,
    on_start: Callable[[int | None], None] | None = None,
) -> dict:
    """Encode a video file (or "-" with `format`) to a .vtw at `dst` ("-" = stdout); returns a summary.

    `dtype` is a raw latent dtype (a 1.x file) or `EntropyCoding` (a 2.0 file, which also keeps the
    source's audio packets unless `audio` is False). `on_start(estimated_frames)` is called once the
    header is read (for progress totals).
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed if seed is not None else 0) if sample else None
    with VideoReader(src, format) as video:  # a bad input fails here, before the model loads
        loaded, runner = session.load()
        cfg = loaded.config
        geometry = Geometry.plan(video.width, video.height, cfg.image_size, fit)
        if on_start:
            on_start(video.estimated_frames)
        with vtw_writer(dst, model_ref(loaded), geometry, dtype, sampled=sample,
                        seed=seed if sample else None) as writer:  # fmt: skip
            for clip, valid in iter_clips(video, cfg.frames):
                writer.add(runner.encode(frames_to_tiles(clip, geometry), sample=sample, generator=generator))
                if progress:
                    progress(valid)
            if audio:
                _keep_audio(src, writer, session.warn)
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
        "latent_dtype": header.dtype,
        "step": header.step,
        "keyint": header.keyint,
        "bits_per_value": summary["bits_per_value"],
        "audio_tracks": len(writer.audio) if isinstance(writer, CodedWriter) else 0,
        "seconds": time.perf_counter() - started,
    }


def _keep_audio(src: Path | str, writer: CodedWriter | VtwWriter, warn: Callable[[str], None]) -> None:
    """Store the source's audio packets in a 2.0 writer; say so when they cannot be kept."""
    if str(src) == STDIO:
        warn("audio of a piped input is not kept (encode a file to keep it)")
        return
    tracks, packets = read_audio(src)
    if not tracks:
        return
    if not isinstance(writer, CodedWriter):
        warn(f"{src}: its audio is not kept: raw --dtype files (.vtw 1.x) hold latents only")
        return
    writer.add_audio(tracks, packets)


def _write_frames(
    dst: Path | str,
    info: VideoInfo,
    geometry: Geometry,
    clips: Iterator[np.ndarray],
    output: VideoOutput,
    progress: Progress,
    audio: VtwReader | CodedReader | None = None,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Write decoded clips (T, H, W, 3), trimming the padded tail to the source frame count.

    With `audio` (an open 2.0 file holding audio), its packets are muxed beside the video when the
    output container can hold their codec; `warn` is told about tracks it cannot."""
    width, height = geometry.output_size
    written = 0
    with VideoWriter(dst, info, width, height, output.codec, output.crf, output.format) as out:
        tracks = getattr(audio, "audio", [])
        if tracks:
            refused = out.add_audio(tracks)
            if refused and warn:
                warn(f"{out.name}: this container cannot hold {', '.join(refused)} audio; writing the video "
                     "without it (use .mkv to keep it)")
        for frames in clips:
            keep = min(len(frames), info.frame_count - written)
            for frame in frames[:keep]:
                out.write(frame)
            written += keep
            if progress:
                progress(keep)
        if tracks:
            for track, packets in audio.audio_packets():
                out.mux_audio(track, packets)
    return written


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
        loaded, runner = session.load(header.model.spec)
        check_model(loaded, header, reader.name, force, session.warn)
        if on_start:
            on_start(header.video.frame_count)
        geometry = header.geometry
        clips = (tiles_to_frames(runner.decode(lat, only=only), geometry) for lat in reader.iter_clips())
        frames = _write_frames(dst, header.video, geometry, clips, output, progress, reader, session.warn)
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
    dtype: Storage = EntropyCoding(),
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
            if isinstance(dtype, EntropyCoding) and dtype.step is None and b.header.step is not None:
                dtype = EntropyCoding(step=b.header.step, keyint=b.header.keyint)  # B's symbols stay exact
            with vtw_writer(dst, b.header.model, geometry, dtype, provenance={
                "swap": {"structure": a.name, "dynamics": b.name, "range": span}}) as writer:  # fmt: skip
                if isinstance(writer, CodedWriter) and isinstance(b, CodedReader) and b.audio:
                    writer.add_audio(b.audio, b.audio_packets())  # B's timeline, B's sound
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
                frames = tiles_to_frames(runner.decode(lat), geometry) if mask.any() else None
                if frames is None or not mask.all():
                    own = tiles_to_frames(runner.decode(lat_b), geometry)
                    frames = own if frames is None else np.where(mask[:, None, None, None], frames, own)
                swapped_clips += bool(mask.any())
                yield frames

        frames = _write_frames(dst, info, geometry, clips(), output, progress, b, session.warn)
    return {"structure": a.name, "dynamics": b.name, "output": str(dst), "frames": frames,
            "clips_swapped": swapped_clips, "range": span, "seconds": time.perf_counter() - started}  # fmt: skip
