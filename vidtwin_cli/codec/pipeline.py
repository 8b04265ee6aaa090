"""The codec's data path: video -> clips -> tiles -> model -> latents -> .vtw, and back.

Every function streams: one clip of frames and its tiles are in memory at a time, latents are
spooled by the container writer, and decoding reads one clip of latents at a time. Options arrive
validated (`codec/options.py`); results leave as dataclasses (`codec/results.py`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models import Latents

from vidtwin_cli.callbacks import OnStart, Progress, Warn
from vidtwin_cli.atomic import check_writable
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.options import DecodeOptions, EncodeOptions, VideoOutput
from vidtwin_cli.codec.results import DecodeResult, EncodeResult
from vidtwin_cli.codec.runtime import ModelRunner
from vidtwin_cli.codec.weights import LoadedModel
from vidtwin_cli.errors import InputError, ModelError
from vidtwin_cli.video.frames import FrameArray
from vidtwin_cli.video.info import Geometry, VideoInfo
from vidtwin_cli.video.io import VideoReader, VideoWriter, iter_clips
from vidtwin_cli.video.tiling import clip_frames, frames_to_tiles
from vidtwin_cli.vtw.container import ModelRef, VtwFile, VtwHeader, VtwReader, VtwWriter, describe_vtw, open_vtw

VideoSource = Path | str | np.ndarray | torch.Tensor  # a file ("-": stdin) or (T, H, W, 3) uint8 frames
LatentSource = Path | str | VtwFile  # a .vtw file ("-": stdin) or one in memory


class Latent(Protocol):
    """What decoding reads from: an open `.vtw` (`VtwReader`) or one in memory (`MemoryVtw`)."""

    name: str
    header: VtwHeader

    def clip(self, index: int) -> Latents: ...

    def iter_clips(self) -> Iterator[Latents]: ...


@dataclass(frozen=True)
class MemoryVtw:
    """A `VtwFile` read like an open file."""

    vtw: VtwFile
    name: str = "<latents>"

    @property
    def header(self) -> VtwHeader:
        return self.vtw.header

    def clip(self, index: int) -> Latents:
        if not 0 <= index < self.header.clips:
            raise IndexError(f"clip {index} of {self.header.clips}")
        tiles = self.header.tiles_per_clip
        return self.vtw.latents.select(slice(index * tiles, (index + 1) * tiles))

    def iter_clips(self) -> Iterator[Latents]:
        for index in range(self.header.clips):
            yield self.clip(index)


@contextlib.contextmanager
def open_latents(src: LatentSource) -> Iterator[Latent]:
    """A `.vtw` path opened (and validated) for decoding, or an in-memory `VtwFile` as is."""
    if isinstance(src, VtwFile):
        yield MemoryVtw(src)
        return
    with open_vtw(src) as reader:
        yield reader


def open_video(src: VideoSource, fps: float | Fraction | None = None, format: str | None = None,
               strict: bool = False) -> VideoReader | FrameArray:  # fmt: skip
    """A video file ("-": stdin, with `format`) or an array of frames (with `fps`), ready for `with`.

    `strict`: a damaged or cut file is an InputError instead of a warning (`VideoReader`)."""
    if isinstance(src, (np.ndarray, torch.Tensor)):
        if fps is None:
            raise InputError("encoding an array of frames needs its frame rate (fps)")
        return FrameArray(src, fps)
    return VideoReader(src, format, strict)


def _source_name(src: VideoSource | LatentSource) -> str:
    return str(src) if isinstance(src, (str, Path)) else "<frames>" if not isinstance(src, VtwFile) else "<latents>"


def model_ref(loaded: LoadedModel) -> ModelRef:
    return ModelRef(loaded.spec, loaded.sha256, loaded.config, loaded.commit)


def check_model(loaded: LoadedModel, header: VtwHeader, name: str, force: bool, warn: Warn) -> None:
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


# ---- encoding --------------------------------------------------------------------------------


def _encoded_clips(video: VideoReader | FrameArray, geometry: Geometry, runner: ModelRunner, options: EncodeOptions,
                   progress: Progress | None) -> Iterator[Latents]:  # fmt: skip
    """The latents of every clip of `video` (the last clip padded), clip by clip."""
    generator = torch.Generator().manual_seed(options.seed or 0) if options.sample else None
    for clip, valid in iter_clips(video, runner.config.frames):
        yield runner.encode(frames_to_tiles(clip, geometry), sample=options.sample, generator=generator)
        if progress:
            progress(valid)


def encode_video(
    src: VideoSource,
    dst: Path | str,
    session: ModelSession,
    options: EncodeOptions = EncodeOptions(),
    *,
    fps: float | Fraction | None = None,
    format: str | None = None,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> EncodeResult:
    """Encode a video file ("-" with `format`) or frames (with `fps`) to a .vtw at `dst` ("-" = stdout).

    `on_start(estimated_frames)` is called once the header is read (for progress totals).
    """
    started = time.perf_counter()
    check_writable(Path(dst), (Path(src),) if isinstance(src, (str, Path)) else ())
    with open_video(src, fps, format, options.strict) as video:  # a bad input fails here, before the model loads
        loaded, runner = session.load()
        geometry = Geometry.plan(video.width, video.height, loaded.config.image_size, options.fit)
        if on_start:
            on_start(video.estimated_frames)
        with VtwWriter(dst, model_ref(loaded), geometry, options.dtype, sampled=options.sample,
                       seed=options.seed if options.sample else None) as writer:  # fmt: skip
            for latents in _encoded_clips(video, geometry, runner, options, progress):
                writer.add(latents)
            nbytes = writer.finish(video.info)
            header = writer.header
    summary = describe_vtw(header, nbytes)
    return EncodeResult(
        input=_source_name(src), output=str(dst), frames=header.video.frame_count, width=header.video.width,
        height=header.video.height, fps=float(header.video.fps), clips=header.clips,
        tiles_per_clip=header.tiles_per_clip, bytes=nbytes,
        bitrate_kbps=summary["bitrate_bps"] / 1000 if summary["bitrate_bps"] else None,
        compression_rate=summary["compression_rate"], compression_vs_raw=summary["compression_vs_raw"],
        latent_dtype=options.dtype, seconds=time.perf_counter() - started,
    )  # fmt: skip


def encode_latents(
    src: VideoSource,
    session: ModelSession,
    options: EncodeOptions = EncodeOptions(),
    *,
    fps: float | Fraction | None = None,
    format: str | None = None,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> VtwFile:
    """Encode a video file or frames to an in-memory `VtwFile`: the header and float32 latents.

    The latents are the model's own float32 values; `options.dtype` applies when the file is written
    (`write_vtw`).
    """
    with open_video(src, fps, format, options.strict) as video:
        loaded, runner = session.load()
        geometry = Geometry.plan(video.width, video.height, loaded.config.image_size, options.fit)
        if on_start:
            on_start(video.estimated_frames)
        latents = Latents.cat(list(_encoded_clips(video, geometry, runner, options, progress)))
        info = video.info
    clips = latents.structure.shape[0] // geometry.tiles_per_clip
    header = VtwHeader(model_ref(loaded), info, geometry, clips, options.dtype, sampled=options.sample,
                       seed=options.seed if options.sample else None)  # fmt: skip
    return VtwFile(header, latents)


# ---- decoding --------------------------------------------------------------------------------


class Stopwatch:
    """Accumulates the seconds spent inside `timing()` blocks (model time, apart from I/O and metrics)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


def trimmed(frames: Iterable[np.ndarray], frame_count: int, progress: Progress | None = None) -> Iterator[np.ndarray]:
    """Decoded frames (H, W, 3), the padded tail of the last clip dropped: exactly `frame_count` frames."""
    for index, frame in enumerate(frames):
        if index == frame_count:
            return
        yield frame
        if progress:
            progress(1)


def clip_decoded(runner: ModelRunner, latents: Latents, geometry: Geometry,
                 only: str | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """The T frames of one clip's latents (all its tiles), decoded one row of tiles at a time."""
    cols = geometry.cols
    rows = (runner.decode(latents.select(slice(r * cols, (r + 1) * cols)), only=only) for r in range(geometry.rows))
    return clip_frames(rows, geometry)


def decoded_frames(latent: Latent, runner: ModelRunner, only: str | None = None, progress: Progress | None = None,
                   clock: Stopwatch | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Frames (H, W, 3) uint8 of decoded latents, one at a time, with the source's frame count.

    Memory is bounded by one clip of uint8 frames (tile mode) or one frame (resize), whatever size
    the file claims (`video/tiling.py`). `clock` collects the time spent in the model and untiling.
    """
    geometry = latent.header.geometry

    def frames() -> Iterator[np.ndarray]:
        for latents in latent.iter_clips():
            clip = clip_decoded(runner, latents, geometry, only)
            while True:
                with clock.timing() if clock else contextlib.nullcontext():
                    frame = next(clip, None)
                if frame is None:
                    break
                yield frame

    return trimmed(frames(), latent.header.video.frame_count, progress)


def write_frames(dst: Path | str, info: VideoInfo, geometry: Geometry, frames: Iterable[np.ndarray],
                 output: VideoOutput) -> int:  # fmt: skip
    """Write frames with the timing of `info` at the geometry's output size; returns the count."""
    width, height = geometry.output_size
    with VideoWriter(dst, info, width, height, output.codec, output.crf, output.format) as out:
        for frame in frames:
            out.write(frame)
        return out.frames_written


@contextlib.contextmanager
def decoding(src: LatentSource, session: ModelSession, options: DecodeOptions, on_start: OnStart | None = None,
             output: VideoOutput | None = None) -> Iterator[tuple[Latent, ModelRunner]]:  # fmt: skip
    """Open latents and the model that may decode them (`--model`, else the one the file records).

    With `output`, frames larger than it allows are refused first, before the model loads."""
    with open_latents(src) as latent:
        header = latent.header
        if output is not None:
            output.check_size(header.geometry, latent.name)
        loaded, runner = session.load(header.model)
        check_model(loaded, header, latent.name, options.force, session.warn)
        if on_start:
            on_start(header.video.frame_count)
        yield latent, runner


def iter_decoded(src: LatentSource, session: ModelSession, options: DecodeOptions = DecodeOptions(),
                 progress: Progress | None = None, on_start: OnStart | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Decoded frames (H, W, 3) uint8 of a .vtw or in-memory latents, streamed clip by clip."""
    with decoding(src, session, options, on_start) as (latent, runner):
        yield from decoded_frames(latent, runner, options.only, progress)


def decode_vtw(
    src: LatentSource,
    dst: Path | str,
    session: ModelSession,
    options: DecodeOptions = DecodeOptions(),
    output: VideoOutput | None = None,
    *,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> DecodeResult:
    """Decode latents to a video with the source's frame count, timing and size."""
    started = time.perf_counter()
    check_writable(Path(dst), (Path(src),) if isinstance(src, (str, Path)) else ())
    output = output or VideoOutput()
    with decoding(src, session, options, on_start, output) as (latent, runner):
        header = latent.header
        frames = decoded_frames(latent, runner, options.only, progress)
        count = write_frames(dst, header.video, header.geometry, frames, output)
    width, height = header.geometry.output_size
    return DecodeResult(_source_name(src), str(dst), count, width, height, float(header.video.fps),
                        time.perf_counter() - started, options.only)  # fmt: skip
