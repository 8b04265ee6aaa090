"""Cross-reenactment: the structure latents of one video decoded with the dynamics latents of another.

Either side may be a `.vtw` or a video file (encoded here, in memory). The output has the structure
video's geometry (its size and tile grid) and the dynamics video's timeline. Latents only combine
on the same tile grid, so a dynamics video of another size is brought onto the structure's grid
first: its frames (decoded from its `.vtw`, or read from the file) are scaled to the structure's
size and encoded again. The structure clip shown at a moment is the one of the structure video at
that time (held at its last clip when the dynamics video runs longer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from models import Latents

from vidtwin_cli.callbacks import OnStart, Progress
from vidtwin_cli.atomic import check_writable
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.options import EncodeOptions, SwapOptions, VideoOutput
from vidtwin_cli.codec.pipeline import (
    Latent, LatentSource, MemoryVtw, check_model, clip_decoded, decoded_frames, encode_latents, open_latents, trimmed,
    write_frames,
)  # fmt: skip
from vidtwin_cli.codec.results import SwapResult
from vidtwin_cli.codec.runtime import ModelRunner
from vidtwin_cli.errors import ModelError
from vidtwin_cli.video.info import Geometry, VideoInfo
from vidtwin_cli.video.io import VideoReader, iter_clips
from vidtwin_cli.video.span import frame_times
from vidtwin_cli.video.tiling import frames_to_tiles, resize_clip
from vidtwin_cli.vtw.container import CodedReader, CodedWriter, EntropyCoding, Storage, VtwFile, VtwHeader, vtw_writer
from vidtwin_cli.vtw.entropy import DEFAULT_KEYINT, DEFAULT_QUALITY, latent_sigma, step_for_quality
from vidtwin_cli.vtw.header import ENTROPY

SwapSource = LatentSource  # a .vtw path (or an in-memory VtwFile), or any other path: a video file


def swap_latents(structure_from: Latents, dynamics_from: Latents) -> Latents:
    """Structure of one clip with the dynamics of another (the decoder input u_S^A + u_D^B)."""
    return Latents(structure_from.structure, dynamics_from.dynamics_x, dynamics_from.dynamics_y)


def is_latents(src: SwapSource) -> bool:
    """A `.vtw` (by its name) or latents in memory; anything else is read as a video file."""
    return isinstance(src, VtwFile) or Path(src).suffix == ".vtw"


def _same_grid(a: Geometry, b: Geometry) -> bool:
    return (a.fit, a.rows, a.cols) == (b.fit, b.rows, b.cols)


def _on_grid(frames: Iterable[np.ndarray], geometry: Geometry, runner: ModelRunner, progress: Progress | None) -> Latents:
    """Latents of frames of any size, scaled to `geometry`'s source size and encoded on its tile grid."""
    encoded = []
    for clip, valid in iter_clips(frames, runner.config.frames):
        encoded.append(runner.encode(frames_to_tiles(resize_clip(clip, geometry.width, geometry.height), geometry)))
        if progress:
            progress(valid)
    return Latents.cat(encoded)


def conform(src: SwapSource, latent: Latent | None, target: VtwHeader, runner: ModelRunner,
            progress: Progress | None = None) -> Latent:  # fmt: skip
    """The dynamics source on the structure's tile grid: as it is when it already is on it, else its
    frames (decoded from `latent`, or read from the video file `src`) scaled and encoded again."""
    if latent is not None and _same_grid(latent.header.geometry, target.geometry):
        return latent
    if latent is not None:
        latents, info = _on_grid(decoded_frames(latent, runner), target.geometry, runner, progress), latent.header.video
    else:
        with VideoReader(src) as video:
            latents, info = _on_grid(video, target.geometry, runner, progress), video.info
    clips = latents.structure.shape[0] // target.geometry.tiles_per_clip
    header = VtwHeader(target.model, on_timeline(info, target.video), target.geometry, clips, "fp32")
    return MemoryVtw(VtwFile(header, latents), latent.name if latent is not None else str(src))


def on_timeline(timing: VideoInfo, picture: VideoInfo) -> VideoInfo:
    """`picture`'s size and pixel aspect with `timing`'s frames, rate and timestamps."""
    return dataclasses.replace(timing, width=picture.width, height=picture.height, sample_aspect=picture.sample_aspect)


def _structure_clips(a: VtwHeader, b: VideoInfo, t: int) -> list[int]:
    """For each clip of the dynamics timeline `b`, the structure clip showing at its first frame."""
    times_a, starts_b = frame_times(a.video), frame_times(b)[::t]
    frames = np.searchsorted(times_a, starts_b + 1e-9, side="right") - 1  # the frame of A shown then
    return [min(max(int(f), 0) // t, a.clips - 1) for f in frames]


def swap_vtw(
    a_src: SwapSource,
    b_src: SwapSource,
    dst: Path | str,
    session: ModelSession,
    options: SwapOptions = SwapOptions(),
    output: VideoOutput | None = None,
    *,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> SwapResult:
    """Structure of A with the dynamics of B: A's geometry, B's timeline; a `dst` ending in .vtw stores latents.

    A and B are `.vtw` files (or `VtwFile`s) or video files, which are encoded first (`--fit tile`).
    With `options.span` (a `--range` of B, video/span.py) only frames in that span are swapped, the rest is
    B's own reconstruction (per frame for video output; for .vtw output per clip, every clip that
    overlaps the span); a `.vtw` A is then opened lazily: only the clips showing during the span are read.
    """
    started = time.perf_counter()
    as_vtw = Path(dst).suffix == ".vtw"
    output = output or VideoOutput()
    check_writable(Path(dst), tuple(Path(s) for s in (a_src, b_src) if isinstance(s, (str, Path))))
    with contextlib.ExitStack() as stack:
        lazy = (options.span is not None, False)  # B is read whole (the output is B's timeline); A only in the span
        a_file, b_file = (stack.enter_context(open_latents(s, part)) if is_latents(s) else None
                          for s, part in zip((a_src, b_src), lazy))  # fmt: skip
        files = [f for f in (a_file, b_file) if f is not None]
        if len(files) == 2 and a_file.header.model.weights_sha256 != b_file.header.model.weights_sha256:
            ha, hb = a_file.header.model, b_file.header.model
            raise ModelError(f"{a_file.name} and {b_file.name} come from different models "
                             f"({ha.spec} {ha.weights_sha256[:12]} vs {hb.spec} {hb.weights_sha256[:12]})")
        if b_file is not None and options.range:  # a bad --range fails before the model loads
            options.range.frames(b_file.header.video, b_file.name)
        if not as_vtw and a_file is not None:  # A's geometry is the output's
            output.check_size(a_file.header.geometry, a_file.name)
        loaded, runner = session.load(files[0].header.model if files else None)
        for f in files:
            check_model(loaded, f.header, f.name, options.force, session.warn)
        a = a_file or MemoryVtw(encode_latents(a_src, session, EncodeOptions()), str(a_src))
        b = conform(b_src, b_file, a.header, runner)
        info, geometry, t = on_timeline(b.header.video, a.header.video), a.header.geometry, loaded.config.frames
        if on_start:
            on_start(info.frame_count)
        first, stop = options.range.frames(info, b.name) if options.range else (0, info.frame_count)
        inside = np.zeros(info.frame_count, dtype=bool)  # per frame of B
        inside[first:stop] = True
        structure_clip = _structure_clips(a.header, info, t)
        swapped_clips = 0

        def mixed(i: int, lat_b: Latents) -> tuple[Latents | None, np.ndarray]:
            """The swapped latents of B's clip i (None when no frame of it is in the span: A is not read) and
            which of its frames are in the span."""
            mask = np.zeros(t, dtype=bool)  # padded tail frames count as outside
            real = inside[i * t : (i + 1) * t]
            mask[: len(real)] = real
            return (swap_latents(a.clip(structure_clip[i]), lat_b) if mask.any() else None), mask

        if as_vtw:
            provenance = {"swap": {"structure": a.name, "dynamics": b.name, "range": options.span}}
            with vtw_writer(dst, a.header.model, geometry, _storage(options, b), provenance=provenance) as writer:
                if isinstance(writer, CodedWriter) and isinstance(b, CodedReader) and b.audio:
                    writer.add_audio(b.audio, b.audio_packets())  # B's timeline, B's sound
                for i, lat_b in enumerate(b.iter_clips()):
                    lat, _ = mixed(i, lat_b)
                    swapped_clips += lat is not None
                    writer.add(lat if lat is not None else lat_b)
                    if progress:
                        progress(int(min(t, info.frame_count - i * t)))
                nbytes = writer.finish(info)
            return SwapResult(a.name, b.name, str(dst), info.frame_count, swapped_clips, options.span, nbytes,
                              time.perf_counter() - started, str(session.device), session.precision)  # fmt: skip

        def frames() -> Iterator[np.ndarray]:
            nonlocal swapped_clips
            for i, lat_b in enumerate(b.iter_clips()):
                lat, mask = mixed(i, lat_b)
                swapped = clip_decoded(runner, lat, geometry) if lat is not None else None
                own = clip_decoded(runner, lat_b, geometry) if not mask.all() else None
                swapped_clips += bool(mask.any())
                for inside_span in mask:  # frame by frame: the swap inside the span, B's own outside
                    frame_swapped = next(swapped) if swapped is not None else None
                    frame_own = next(own) if own is not None else None
                    yield frame_swapped if inside_span else frame_own

        count = write_frames(dst, info, geometry, trimmed(frames(), info.frame_count, progress), output,
                             b, session.warn)  # B's sound with B's timeline
    return SwapResult(a.name, b.name, str(dst), count, swapped_clips, options.span, None,
                      time.perf_counter() - started, str(session.device), session.precision)  # fmt: skip


def _storage(options: SwapOptions, b: Latent) -> Storage:
    """How swapped latents are stored: a raw dtype, or entropy coding with B's step and key interval
    (B's symbols then stay exact; a B without one gets the default quality's step)."""
    if options.dtype != ENTROPY:
        return options.dtype
    step = b.header.step or step_for_quality(DEFAULT_QUALITY, latent_sigma(b.clip(0)) or 1.0)
    return EntropyCoding(step=step, keyint=b.header.keyint or DEFAULT_KEYINT)
