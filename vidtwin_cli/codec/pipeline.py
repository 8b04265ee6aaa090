"""The codec's data path: video -> clips -> tiles -> model -> latents -> .vtw, and back.

Every function streams: one clip of frames and its tiles are in memory at a time, latents are
spooled by the container writer, and decoding reads one clip of latents at a time. Options arrive
validated (`codec/options.py`); results leave as dataclasses (`codec/results.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from vidtwin_cli.atomic import STDIO, check_writable
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.options import DecodeOptions, EncodeOptions, VideoOutput
from vidtwin_cli.codec.results import DecodeResult, EncodeResult
from vidtwin_cli.codec.runtime import ModelRunner
from vidtwin_cli.codec.weights import LoadedModel
from vidtwin_cli.errors import InputError, ModelError
from vidtwin_cli.video.frames import FrameArray
from vidtwin_cli.video.info import Geometry, VideoInfo
from vidtwin_cli.video.io import Trim, VideoReader, VideoWriter, iter_clips
from vidtwin_cli.video.span import excerpt, frame_times
from vidtwin_cli.video.tiling import clip_frames, frames_to_tiles
from vidtwin_cli.atomic import STDIO
from vidtwin_cli.video.audio import AudioPacket, read_audio
from vidtwin_cli.vtw.container import (
    CodedReader, CodedWriter, ModelRef, VtwFile, VtwHeader, VtwFigures, VtwWriter, open_vtw, vtw_writer,
)  # fmt: skip
from vidtwin_cli.vtw.entropy import latent_sigma, step_for_quality
from vidtwin_cli.vtw.header import ENTROPY

VideoSource = Path | str | np.ndarray | torch.Tensor  # a file ("-": stdin) or (T, H, W, 3) uint8 frames
LatentSource = Path | str | VtwFile  # a .vtw file ("-": stdin) or one in memory


class Latent(Protocol):
    """What decoding reads from: an open `.vtw` (`VtwReader`, `CodedReader`) or one in memory (`MemoryVtw`)."""

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
def open_latents(src: LatentSource, lazy: bool = False) -> Iterator[Latent]:
    """A `.vtw` path opened (and validated) for decoding, or an in-memory `VtwFile` as is.

    `lazy`: a 2.0 file is checked as it is read, so a part of it costs reading that part (`open_vtw`)."""
    if isinstance(src, VtwFile):
        yield MemoryVtw(src)
        return
    with open_vtw(src, lazy=lazy) as reader:
        yield reader


def open_video(src: VideoSource, fps: float | Fraction | None = None, format: str | None = None,
               trim: Trim = Trim(), strict: bool = False) -> VideoReader | FrameArray:  # fmt: skip
    """A video file ("-": stdin, with `format`; the `trim`med part) or an array of frames (with `fps`), for `with`.

    `strict`: a damaged or cut file is an InputError instead of a warning (`VideoReader`)."""
    if isinstance(src, (np.ndarray, torch.Tensor)):
        if fps is None:
            raise InputError("encoding an array of frames needs its frame rate (fps)")
        if not trim.whole:
            raise InputError("trim an array of frames by slicing it")
        return FrameArray(src, fps)
    return VideoReader(src, format, trim, strict)


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


def note_dropped(video: VideoReader | FrameArray, geometry: Geometry, warn: Warn) -> None:
    """Say once what the decoded video will not have: (`--fit crop`) the source's full picture."""
    if geometry.fit == "crop" and geometry.output_size != (video.width, video.height):
        width, height = geometry.output_size
        warn(f"--fit crop scales the {video.width}x{video.height} frames and keeps their centre square: the decoded "
             f"video will be {width}x{height} (--fit tile keeps the whole picture at its size)")


@contextlib.contextmanager
def encoding(
    src: VideoSource, session: ModelSession, options: EncodeOptions, fps: float | Fraction | None, format: str | None,
    on_start: OnStart | None,
) -> Iterator[tuple[VideoReader | FrameArray, LoadedModel, ModelRunner, Geometry]]:
    """Open the video (a bad input fails here, before the model loads), then the model, and plan the tiles:
    what `encode_video` and `encode_latents` start with."""
    with open_video(src, fps, format, options.trim, options.strict) as video:
        loaded, runner = session.load()
        geometry = Geometry.plan(video.width, video.height, loaded.config.image_size, options.fit)
        note_dropped(video, geometry, session.warn)
        if on_start:
            on_start(video.estimated_frames)
        yield video, loaded, runner, geometry


def _encoded_clips(video: VideoReader | FrameArray, geometry: Geometry, runner: ModelRunner, options: EncodeOptions,
                   progress: Progress | None) -> Iterator[Latents]:  # fmt: skip
    """The latents of every clip of `video` (the last clip padded), clip by clip."""
    generator = torch.Generator().manual_seed(options.seed or 0) if options.sample else None
    sigma = None  # the latents' spread, from the first clip as the entropy coder takes it: refine's step size
    for clip, valid in iter_clips(video, runner.config.frames):
        tiles = frames_to_tiles(clip, geometry)
        latents = runner.encode(tiles, sample=options.sample, generator=generator)
        if options.refine:
            sigma = sigma or latent_sigma(latents) or 1.0
            latents = runner.refine(tiles, latents, options.refine, sigma)
        yield latents
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

    Entropy coding (the default `options.dtype`) writes a 2.0 file that also keeps the source file's
    audio packets (unless `options.audio` is False); a raw dtype writes 1.x, latents only.
    `on_start(estimated_frames)` is called once the header is read (for progress totals).
    """
    started = time.perf_counter()
    check_writable(Path(dst), (Path(src),) if isinstance(src, (str, Path)) else ())
    with encoding(src, session, options, fps, format, on_start) as (video, loaded, runner, geometry):
        with vtw_writer(dst, model_ref(loaded), geometry, options.storage, sampled=options.sample,
                        seed=options.seed if options.sample else None,
                        provenance=options.provenance) as writer:  # fmt: skip
            for latents in _encoded_clips(video, geometry, runner, options, progress):
                writer.add(latents)
            if options.audio and options.trim.whole:
                _keep_audio(src, video.audio_streams, writer, session.warn)
            elif video.audio_streams:
                why = "left out (--no-audio)" if not options.audio else "not kept by a trimmed encode (--start/--duration/--frames)"
                session.warn(f"{video.name} has audio, {why}: the decoded video will be silent")
            nbytes = writer.finish(video.info)
            header = writer.header
    figures = VtwFigures.of(header, nbytes)
    return EncodeResult(
        input=_source_name(src), output=str(dst), frames=header.video.frame_count, width=header.video.width,
        height=header.video.height, fps=float(header.video.fps), clips=header.clips,
        tiles_per_clip=header.tiles_per_clip, bytes=nbytes,
        bitrate_kbps=figures.bitrate_bps / 1000 if figures.bitrate_bps else None,
        compression_rate=header.model.config.compression_rate, compression_vs_raw=figures.compression_vs_raw,
        input_bytes=Path(src).stat().st_size if isinstance(src, (str, Path)) and str(src) != STDIO else None,
        latent_dtype=header.dtype, seconds=time.perf_counter() - started, device=str(session.device),
        precision=session.precision, step=header.step, keyint=header.keyint, bits_per_value=figures.bits_per_value,
        audio_tracks=len(writer.audio) if isinstance(writer, CodedWriter) else 0,
    )  # fmt: skip


def _keep_audio(src: VideoSource, audio_streams: int, writer: CodedWriter | VtwWriter,
                warn: Callable[[str], None]) -> None:  # fmt: skip
    """Store the source file's audio packets in a 2.0 writer; say so when they cannot be kept."""
    if not isinstance(src, (str, Path)) or not audio_streams:
        return  # frames in memory, or a video without audio
    if str(src) == STDIO:
        warn("the audio of a piped input is not kept (encode the file itself to keep it)")
        return
    tracks, packets = read_audio(src)
    if not tracks:
        return
    if not isinstance(writer, CodedWriter):
        warn(f"{src}: its audio is not kept: raw --dtype files (.vtw 1.x) hold latents only")
        return
    writer.add_audio(tracks, packets)


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
    with encoding(src, session, options, fps, format, on_start) as (video, loaded, runner, geometry):
        latents = Latents.cat(list(_encoded_clips(video, geometry, runner, options, progress)))
        info = video.info
    tiles = geometry.tiles_per_clip
    clips = latents.structure.shape[0] // tiles
    coding = {}
    if options.dtype == ENTROPY:  # the step the file will have, set as CodedWriter sets it
        first = Latents(*(getattr(latents, key)[:tiles] for key in ("structure", "dynamics_x", "dynamics_y")))
        step = options.step or step_for_quality(options.quality, latent_sigma(first) or 1.0)
        coding = {"step": float(step), "keyint": options.keyint}
    header = VtwHeader(model_ref(loaded), info, geometry, clips, options.dtype, sampled=options.sample,
                       seed=options.seed if options.sample else None, provenance=options.provenance,
                       **coding)  # fmt: skip
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
                   clock: Stopwatch | None = None, frames: tuple[int, int] | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Frames (H, W, 3) uint8 of decoded latents, one at a time: the source's frames, or `frames` [first, stop) of them.

    Only the clips holding the frames asked for are read and decoded (a clip of a 2.0 file from its key
    clip). Memory is bounded by one clip of uint8 frames (tile mode) or one frame (resize), whatever size
    the file claims (`video/tiling.py`). `clock` collects the time spent in the model and untiling.
    """
    geometry, t = latent.header.geometry, latent.header.model.config.frames
    first, stop = frames or (0, latent.header.video.frame_count)

    def decoded() -> Iterator[np.ndarray]:
        for k in range(first // t, -(-stop // t)):
            clip = clip_decoded(runner, latent.clip(k), geometry, only)
            for index in range(k * t, (k + 1) * t):
                with clock.timing() if clock else contextlib.nullcontext():
                    frame = next(clip, None)
                if frame is None:
                    break
                if index >= first:
                    yield frame

    return trimmed(decoded(), stop - first, progress)


def write_frames(dst: Path | str, info: VideoInfo, geometry: Geometry, frames: Iterable[np.ndarray],
                 output: VideoOutput, audio: Latent | None = None, warn: Callable[[str], None] | None = None,
                 window: tuple[float, float] = (0.0, np.inf)) -> int:  # fmt: skip
    """Write frames with the timing of `info` at the geometry's output size; returns the count.

    With `audio` (an open 2.0 file holding audio), its packets are muxed beside the video when the
    output container can hold their codec, each once the video has reached its time (so the muxer
    interleaves them with bounded buffering); `warn` hears about codecs the container cannot hold.
    `window` [start, end) in seconds of the file's timeline: only the packets in it, moved to start at 0
    (the audio of a `--range`).
    """
    width, height = geometry.output_size
    tracks = audio.audio if isinstance(audio, CodedReader) else []
    with VideoWriter(dst, info, width, height, output.codec, output.crf, output.format) as out:
        refused = out.add_audio(tracks) if tracks else []
        if refused and warn:
            warn(f"{out.name}: this container cannot hold {', '.join(refused)} audio; the video is written "
                 "without it (.mkv holds it)")
        sound = _timed_packets(audio, *window) if tracks else iter(())
        pending, times = next(sound, None), frame_times(info)
        for i, frame in enumerate(frames):
            out.write(frame)  # raises past info.frame_count
            while pending is not None and pending[0] <= times[i]:
                out.mux_audio(*pending[1:])
                pending = next(sound, None)
        while pending is not None:
            out.mux_audio(*pending[1:])
            pending = next(sound, None)
        return out.frames_written


def _timed_packets(reader: CodedReader, start: float = 0.0, end: float = np.inf,
                   ) -> Iterator[tuple[float, int, list[AudioPacket]]]:  # fmt: skip
    """(seconds, track, [packet]) of a file's audio in stored order (the source demuxer's), the packets
    timed in [start, end) only, moved earlier by `start`; reading stops once every track has passed `end`.
    A part that starts with the first frame keeps what comes before it (encoder priming, untimed packets)."""
    past: set[int] = set()
    for track, packets in reader.audio_packets():
        base = reader.audio[track].time_base
        shift = round(start / base)
        for p in packets:
            time = p.dts if p.dts is not None else p.pts
            seconds = float(time * base) if time is not None else -np.inf
            if seconds >= end:
                past.add(track)
                if len(past) == len(reader.audio):
                    return
            elif seconds >= start or start <= 0:
                moved = dataclasses.replace(p, pts=_minus(p.pts, shift), dts=_minus(p.dts, shift)) if shift else p
                yield seconds - start, track, [moved]


def _minus(time: int | None, shift: int) -> int | None:
    return None if time is None else time - shift


@contextlib.contextmanager
def decoding(src: LatentSource, session: ModelSession, options: DecodeOptions, on_start: OnStart | None = None,
             output: VideoOutput | None = None) -> Iterator[tuple[Latent, ModelRunner, tuple[int, int]]]:  # fmt: skip
    """Open latents and the model that may decode them (`--model`, else the one the file records), with the
    [first, stop) frames to decode (all of them, or those of `options.span`).

    With `output`, frames larger than it allows are refused first, before the model loads; so is a bad range.
    A range opens a 2.0 file lazily: only its metadata, index and the clips the range needs are read."""
    span = options.range
    with open_latents(src, lazy=span is not None) as latent:
        header = latent.header
        frames = span.frames(header.video, latent.name) if span else (0, header.video.frame_count)
        if output is not None:
            output.check_size(header.geometry, latent.name)
        loaded, runner = session.load(header.model)
        check_model(loaded, header, latent.name, options.force, session.warn)
        if on_start:
            on_start(frames[1] - frames[0])
        yield latent, runner, frames


def iter_decoded(src: LatentSource, session: ModelSession, options: DecodeOptions = DecodeOptions(),
                 progress: Progress | None = None, on_start: OnStart | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Decoded frames (H, W, 3) uint8 of a .vtw or in-memory latents (`options.span`'s part), streamed clip by clip."""
    with decoding(src, session, options, on_start) as (latent, runner, frames):
        yield from decoded_frames(latent, runner, options.only, progress, frames=frames)


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
    """Decode latents to a video with the source's frame count, timing and size (with `options.span`: that
    part's frames, timed from 0, and its audio)."""
    started = time.perf_counter()
    check_writable(Path(dst), (Path(src),) if isinstance(src, (str, Path)) else ())
    output = output or VideoOutput()
    with decoding(src, session, options, on_start, output) as (latent, runner, (first, stop)):
        header = latent.header
        info = excerpt(header.video, first, stop)
        times = frame_times(header.video)
        window = (float(times[first]), float(times[stop]) if stop < len(times) else np.inf)
        frames = decoded_frames(latent, runner, options.only, progress, frames=(first, stop))
        count = write_frames(dst, info, header.geometry, frames, output, latent, session.warn, window)
    width, height = header.geometry.output_size
    return DecodeResult(_source_name(src), str(dst), count, width, height, float(header.video.fps),
                        time.perf_counter() - started, str(session.device), session.precision, options.only,
                        [first, stop] if options.span else None, window[0] if options.span else None)  # fmt: skip
