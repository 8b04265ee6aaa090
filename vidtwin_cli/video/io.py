"""Streaming video I/O with PyAV: RGB frames in, fixed-length clips, RGB frames out with the source timing.

Nothing here holds more than one clip: `VideoReader` decodes one frame at a time, `iter_clips` groups
them into model-length clips, `VideoWriter` encodes one frame at a time. The source's geometry and
timing are collected into a `VideoInfo` while reading and restored exactly by the writer.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np

from vidtwin_cli.atomic import STDIO, atomic_path, stdin_bytes, stdout_bytes
from vidtwin_cli.errors import InputError, RuntimeFailure, UsageError
from vidtwin_cli.interrupts import Interrupted
from vidtwin_cli.video.audio import AudioPacket, AudioTrack, add_tracks, mux_packets
from vidtwin_cli.video.info import VideoInfo

log = logging.getLogger(__name__)

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # visually near-lossless for x264/x265; decoded video is compared against the source
# Encoders whose quality is set with a constant-rate-factor option (name -> extra options it needs).
CRF_CODECS: dict[str, dict[str, str]] = {
    "libx264": {},
    "libx264rgb": {},
    "libx265": {"x265-params": "log-level=error"},  # x265 logs to stderr by itself otherwise
    "libvpx": {"b:v": "0"},  # libvpx/aom use CRF only with the bitrate cap off
    "libvpx-vp9": {"b:v": "0"},
    "libaom-av1": {"b:v": "0"},
    "libsvtav1": {},
}
# Containers that can be written to a pipe, with the muxer options that make them streamable.
PIPE_FORMATS: dict[str, dict[str, str]] = {
    "nut": {},
    "matroska": {},
    "mp4": {"movflags": "frag_keyframe+empty_moov+default_base_moof"},  # fragmented: no seek back to the moov
}
# ffmpeg demuxers that turn non-video files into "video" (the tty demuxer renders any text file as ANSI art).
NOT_VIDEO_FORMATS = {"tty": "a text file"}
# libx265 corrupts its heap (and aborts the process) on some frames narrower than this (seen at 34-48 px).
MIN_X265_WIDTH = 64
# Standard input read without a single frame coming out: then it is not the video --format says (/dev/zero).
MAX_BYTES_WITHOUT_FRAME = 64 << 20
# Containers whose complete stream always has bytes after its last packet (NUT: the index ffmpeg writes at
# the end, unless told `-write_index 0`). A final packet that reaches the end of the input was cut inside
# its payload: the demuxer hands it over short, without an error, and the decoder may not notice either.
TRAILED_FORMATS = frozenset({"nut"})
BT601, LIMITED_RANGE = 6, 1  # AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG: what swscale's default RGB->YUV produces


def _display_name(src: Path | str, stdio: str) -> str:
    return stdio if str(src) == STDIO else str(src)


def _reason(e: BaseException) -> str:
    """The human part of a PyAV/OS error ("Invalid data found when processing input")."""
    if getattr(e, "strerror", None):
        return e.strerror
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Trim:
    """The part of a video to read, like ffmpeg's `-ss`/`-t`/`-frames:v`: from `start` seconds (after the
    first frame), for `duration` seconds and at most `frames` frames. Frames before `start` are decoded
    and dropped, so the cut is frame-exact."""

    start: float = 0.0
    duration: float | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and self.start >= 0):
            raise UsageError(f"--start must be a time in seconds >= 0, got {self.start}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise UsageError(f"--duration must be a positive time in seconds, got {self.duration}")
        if self.frames is not None and self.frames < 1:
            raise UsageError(f"--frames must be >= 1, got {self.frames}")

    @property
    def whole(self) -> bool:
        return self == Trim()

    def estimate(self, frames: int | None, fps: Fraction) -> int | None:
        """How many frames the trimmed part has, from the header's estimate (progress bars only)."""
        left = None if frames is None else max(frames - round(self.start * fps), 0)
        limits = [n for n in (left, self.frames, None if self.duration is None else math.ceil(self.duration * fps))
                  if n is not None]  # fmt: skip
        return min(limits) if limits else None


class _BoundedInput:
    """Standard input for the demuxer, cut off (end of file) after MAX_BYTES_WITHOUT_FRAME bytes without a
    decoded frame: some demuxers search endless garbage for a start code forever.

    A stop signal that arrives while a read waits on the pipe ends the input too, and is kept in
    `stopped` for the reader to raise: PyAV drops exceptions that are not `Exception`s (as `Interrupted`
    is not) raised inside its read callback, and would report the cut-off as damaged data."""

    def __init__(self, raw: object) -> None:
        self._raw, self.since_frame, self.gave_up, self.size = raw, 0, False, 0
        self.stopped: Interrupted | None = None

    def read(self, n: int = -1) -> bytes:
        if self.stopped is not None:
            return b""
        if self.since_frame >= MAX_BYTES_WITHOUT_FRAME:
            self.gave_up = True
            return b""
        try:
            data = self._raw.read(n if n >= 0 else MAX_BYTES_WITHOUT_FRAME)
        except Interrupted as stop:
            self.stopped = stop
            return b""
        self.since_frame += len(data)
        self.size += len(data)
        return data

    def seekable(self) -> bool:
        return False


class _StoppableOutput:
    """Standard output for the muxer. A stop signal that arrives while a write waits on a full pipe (a
    reader that stalls) is kept in `stopped`, and what the muxer writes after it is dropped: PyAV ignores
    errors that are not `Exception`s (as `Interrupted` is not) raised inside its write callback, prints
    them, and would go on writing. The writer raises the stop as soon as PyAV hands control back."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.stopped: Interrupted | None = None
        self.began = False  # whether any byte was handed to stdout

    def write(self, data: bytes) -> int:
        if self.stopped is None:
            self.began = True
            try:
                return self._raw.write(data)
            except Interrupted as stop:
                self.stopped = stop
        return len(data)

    def flush(self) -> None:
        if self.stopped is None:
            self._raw.flush()

    def seekable(self) -> bool:  # stdout redirected to a file can seek (mp4 index), a pipe cannot
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class VideoReader:
    """Decodes the first video stream of a file (or stdin) into RGB frames, one at a time.

        with VideoReader("clip.mp4") as video:
            geometry = Geometry.plan(video.width, video.height, tile)  # header facts, before decoding
            for frame in video:                                      # (H, W, 3) uint8, any source pix_fmt
                ...
            info = video.info                                        # complete once frames are exhausted

    `src` "-" reads stdin and needs `format` (e.g. "nut", "matroska", "mp4"; an mp4 on a pipe must be
    fragmented). Every failure is an `InputError` naming the file: missing, a directory, not a video,
    no video frames, truncated. The first frame is decoded on entry, so a file that cannot produce a
    single frame fails before any output is created.

    Damaged data mid-stream and a cut final packet are decoded past, as ffmpeg does: the frames that
    come out are kept, with one warning naming how many (`strict`: an `InputError` instead).

    Frames come upright: a display rotation (portrait phone video is stored sideways) is applied to
    the pixels, as players and ffmpeg do, so width and height are those of the picture as shown.

    Timing: `info.fps` is the stream's average rate. When the decoded timestamps do not sit on that
    rate's grid (variable frame rate), `info.pts` keeps every frame's timestamp relative to the first
    frame, in `info.time_base` units, and `info.fps` becomes the exact mean rate frame_count/duration.
    `info.duration` is the presentation span: first frame start to last frame end.
    """

    # Header facts, set on entering the `with` block (before any frame is yielded):
    width: int  # of the decoded frames
    height: int
    fps: Fraction  # average rate the stream declares
    sample_aspect: Fraction  # pixel width / height as shown (1 for square pixels)
    time_base: Fraction
    codec: str
    estimated_frames: int | None  # from the header, for progress bars only (AVI drop frames make it too high)
    audio_streams: int  # audio streams beside the video (not decoded here)

    def __init__(self, src: Path | str, format: str | None = None, trim: Trim = Trim(),
                 strict: bool = False) -> None:
        if str(src) == STDIO and not format:
            raise UsageError("reading video from stdin needs a container format (--format nut, matroska, mp4, ...)")
        if format is not None and format not in av.formats_available:
            raise UsageError(f"unknown container format {format!r} (e.g. nut, matroska, mp4)")
        self.src, self.format, self.trim, self.strict = src, format, trim, strict
        self.name = _display_name(src, "<stdin>")
        self._decoded = 0  # frames decoded, those dropped by `trim` included
        self._origin: int | None = None  # timestamp of the first decoded frame
        self._input: _BoundedInput | None = None
        self._errors: list[str] = []  # what the demuxer and decoder reported, each message once
        self._concealed = 0  # frames the decoder flagged as damaged (their errors concealed)
        self._packets_end: int | None = None  # input offset where the last video packet ended, once all are read
        self._container: av.container.InputContainer | None = None
        self._first: np.ndarray | None = None
        self._info: VideoInfo | None = None
        self._started = False
        self._turns = 0  # display rotation of the last frame read, in counterclockwise quarter turns
        self._warned_rotation = False

    def __enter__(self) -> VideoReader:
        self._container = self._open()
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _open(self) -> av.container.InputContainer:
        if str(self.src) == STDIO:
            self._input = _BoundedInput(stdin_bytes())  # PyAV seeks only where `seekable()` says: pipes work
            source: object = self._input
        else:
            path = Path(self.src)
            if path.is_dir():
                raise InputError(f"{path}: is a directory, not a video file")
            if not path.exists():
                raise InputError(f"{path}: no such file")
            source = str(path)
        try:
            container = av.open(source, mode="r", format=self.format)
        except av.error.InvalidDataError as e:
            self._check_gave_up()
            raise InputError(f"{self.name}: not a video file PyAV can read, or truncated ({_reason(e)})") from e
        except (av.FFmpegError, OSError) as e:
            self._check_gave_up()
            raise InputError(f"{self.name}: cannot open ({_reason(e)})") from e
        except ValueError as e:  # e.g. metadata text that is not UTF-8 in a damaged file
            raise InputError(f"{self.name}: not a readable video ({_reason(e)})") from e
        if container.format.name in NOT_VIDEO_FORMATS:
            container.close()
            raise InputError(f"{self.name}: is {NOT_VIDEO_FORMATS[container.format.name]}, not a video")
        return container

    def _check_gave_up(self) -> None:
        """Where the input ended early: raise the stop signal it met, or say it held no video."""
        if self._input is not None and self._input.stopped is not None:
            raise self._input.stopped
        if self._input is not None and self._input.gave_up:
            raise InputError(f"{self.name}: no video frame in the first {MAX_BYTES_WITHOUT_FRAME >> 20} MiB of input; "
                             f"is it really {self.format}?")

    def _read_header(self) -> None:
        container = self._container
        if not container.streams:  # what the mp4 demuxer makes of a file that lost its index
            raise InputError(f"{self.name}: contains no streams (not a video, or truncated)")
        if not container.streams.video:
            raise InputError(f"{self.name}: has no video stream")
        stream = container.streams.video[0]
        self.audio_streams = len(container.streams.audio)
        if stream.codec_context is None:
            raise InputError(f"{self.name}: no decoder for its video codec")
        # Slice threads, not frame threads: a frame-threaded decoder drops the error of a cut final packet
        # (and the frames still in flight) when it is flushed, so a cut stream would look whole.
        stream.thread_type = "SLICE"
        rate = stream.average_rate or stream.guessed_rate
        if not rate or rate <= 0:
            raise InputError(f"{self.name}: the video stream declares no frame rate")
        if stream.time_base is None:
            raise InputError(f"{self.name}: the video stream has no time base")
        self._check_not_truncated(stream)
        self.fps, self.time_base = Fraction(rate), Fraction(stream.time_base)
        self.codec = stream.codec_context.name
        self.estimated_frames = self.trim.estimate(stream.frames or (
            round(container.duration / av.time_base * self.fps) if container.duration else None), self.fps)
        self._decoder = self._decode(stream)
        self._pts: list[int | None] = []
        first = self._next_frame()
        if first is None and not self.trim.whole:
            raise InputError(f"{self.name}: no frames from --start {self.trim.start:g} s on (the video is shorter)")
        if first is None and self._errors:
            hint = "; an mp4 on a pipe must be fragmented" if str(self.src) == STDIO and self.format == "mp4" else ""
            raise InputError(f"{self.name}: cannot decode a single frame ({self._errors[0]}){hint}")
        if first is None:
            raise InputError(f"{self.name}: has no video frames")
        self._first = first
        self.height, self.width = first.shape[:2]
        sar = stream.sample_aspect_ratio  # None or 0 when the stream does not say: square pixels
        self.sample_aspect = Fraction(sar) if sar and 1 / 100 <= sar <= 100 else Fraction(1)  # else damaged
        if self._turns % 2:  # a quarter turn swaps what "wide" means for a pixel
            self.sample_aspect = 1 / self.sample_aspect

    def _check_not_truncated(self, stream: av.video.stream.VideoStream) -> None:
        """A file whose index points past its end was cut short (the demuxer would stop quietly there)."""
        if str(self.src) == STDIO:
            return
        size = Path(self.src).stat().st_size
        for entry in stream.index_entries:
            if entry.pos >= 0 and entry.pos + max(entry.size, 0) > size:
                raise InputError(f"{self.name}: truncated (its index points past the end of the "
                                 f"{size}-byte file); re-download or re-export it")

    def _decode(self, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        """Every frame the stream gives, decoding past a damaged packet as ffmpeg does, and noting what went
        wrong (`_errors`, `_concealed`). A demuxer error ends the packets; the decoder is flushed."""
        packets = self._container.demux(stream)
        end = None
        while True:
            try:
                packet = next(packets, None)
            except (av.FFmpegError, OSError) as e:
                self._note_error(e)
                packet = None
            if packet is not None and packet.size and packet.pos is not None and packet.pos >= 0:  # None: MPEG-PS
                end = packet.pos + packet.size
            elif packet is None or not packet.size:
                self._packets_end = end
            try:
                frames = stream.decode(packet if packet is not None and packet.size else None)  # None: flush
            except (av.FFmpegError, OSError) as e:
                self._note_error(e)
                frames = []
            for frame in frames:
                self._concealed += frame.is_corrupt
                yield frame
            if packet is None or not packet.size:  # the flush packet the demuxer ends with
                return

    def _note_error(self, e: BaseException) -> None:
        if _reason(e) not in self._errors:
            self._errors.append(_reason(e))

    def _next_frame(self) -> np.ndarray | None:
        """Decode one more frame as RGB, recording its timestamp; None at the end of the stream."""
        while True:
            frame = next(self._decoder, None)
            if frame is None:
                self._check_gave_up()
                return None
            if self._input is not None:
                self._input.since_frame = 0
            self._decoded += 1
            if self.trim.whole:
                break
            if self._origin is None:
                self._origin = frame.pts
            at = (float((frame.pts - self._origin) * self.time_base) if frame.pts is not None and self._origin is not None
                  else (self._decoded - 1) / float(self.fps))  # fmt: skip
            end = None if self.trim.duration is None else self.trim.start + self.trim.duration
            if (end is not None and at >= end - 1e-6) or (self.trim.frames is not None and len(self._pts) >= self.trim.frames):
                return None
            if at >= self.trim.start - 1e-6:
                break
        self._pts.append(frame.pts)
        self._last_duration = frame.duration or 0
        rgb = frame.to_ndarray(format="rgb24")
        self._turns = turns = self._quarter_turns(frame.rotation)
        if turns:
            rgb = np.rot90(rgb, turns)  # counterclockwise, as the display matrix asks
        return np.ascontiguousarray(rgb)  # rows of odd-width frames come padded to the line size

    def _quarter_turns(self, degrees: float) -> int:
        """Counterclockwise quarter turns that show a frame upright (phones store portrait video sideways
        with a display rotation). Rotations that are not a multiple of 90° are ignored, once with a warning."""
        turns, rest = divmod(round(degrees), 90)
        if rest and not self._warned_rotation:
            log.warning("%s: display rotation %s° is not a multiple of 90°; frames are used as stored", self.name, degrees)
            self._warned_rotation = True
        return 0 if rest else turns % 4

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield every frame as an (H, W, 3) uint8 RGB array; iterable once."""
        if self._container is None or self._started:
            raise RuntimeError("VideoReader frames can be iterated once, inside its `with` block")
        self._started = True
        frame, self._first = self._first, None
        while frame is not None:
            if frame.shape[:2] != (self.height, self.width):
                raise InputError(f"{self.name}: frame {len(self._pts)} is {frame.shape[1]}x{frame.shape[0]} but the "
                                 f"video started at {self.width}x{self.height}; size changes are not supported")
            yield frame
            frame = self._next_frame()
        self._check_complete()
        self._info = self._timing()

    def _check_complete(self) -> None:
        """A demuxer or decoder error (a cut final packet, damaged data) loses frames or spoils some: a
        warning naming the frames kept, or with `strict` an InputError."""
        reasons = self._errors + ([f"{self._concealed} frame(s) with damage concealed"] if self._concealed else [])
        if self._container.format.name in TRAILED_FORMATS and self._packets_end == self._input_size():
            reasons.append("the last packet stops at the end of the input")
        if not reasons:
            return
        message = f"{self.name}: damaged or cut short ({', '.join(reasons)}); {len(self._pts)} frames were decoded"
        if self.strict:
            raise InputError(f"{message} (--strict)")
        log.warning("%s, and are kept", message)

    def _input_size(self) -> int:
        return self._input.size if self._input is not None else Path(self.src).stat().st_size

    @property
    def info(self) -> VideoInfo:
        """The complete description of the decoded video, once every frame has been yielded."""
        if self._info is None:
            raise RuntimeError("VideoReader.info is known only after all frames have been read")
        return self._info

    def _timing(self) -> VideoInfo:
        n, tb, fps = len(self._pts), self.time_base, self.fps
        step = 1 / (fps * tb)  # ticks per frame at the declared rate
        pts = self._pts
        if any(p is None for p in pts) or any(b <= a for a, b in zip(pts, pts[1:])):
            log.debug("%s: missing or unordered timestamps, timing taken as constant %s fps", self.name, fps)
            relative = None
        else:
            relative = [p - pts[0] for p in pts]
        # A tick of slack absorbs containers that round timestamps (Matroska stores milliseconds).
        if relative is None or all(abs(p - i * step) <= 1 for i, p in enumerate(relative)):
            return VideoInfo(self.width, self.height, fps, tb, n, float(n / fps), None, self.codec, self.sample_aspect)
        last = self._last_duration if self._last_duration > 0 else round(step)
        span = (relative[-1] + last) * tb
        return VideoInfo(self.width, self.height, n / span, tb, n, float(span), tuple(relative), self.codec,
                         self.sample_aspect)


def iter_clips(frames: Iterable[np.ndarray], length: int) -> Iterator[tuple[np.ndarray, int]]:
    """Group frames into (length, H, W, 3) clips; the last one is padded by repeating its last frame.

    Yields (clip, valid) where `valid` is the number of real frames in the clip (< length only for
    the last clip). Each clip is a fresh array, so a consumer may keep it; memory is one clip.
    """
    if length < 1:
        raise ValueError(f"clip length must be >= 1, got {length}")
    clip: np.ndarray | None = None
    filled = 0
    for frame in frames:
        if clip is None:
            clip = np.empty((length, *frame.shape), frame.dtype)
        clip[filled] = frame
        filled += 1
        if filled == length:
            yield clip, length
            clip, filled = None, 0
    if clip is not None:
        clip[filled:] = clip[filled - 1]
        yield clip, filled


# --------------------------------------------------------------------------- writing


def _pixel_format(codec: av.Codec, width: int, height: int) -> str:
    """yuv420p when both sides are even; 4:2:0 cannot code an odd side, so odd sizes use yuv444p (or RGB)."""
    supported = {f.name for f in codec.video_formats or ()}
    preferred = (["yuv420p"] if width % 2 == 0 and height % 2 == 0 else []) + ["yuv444p", "rgb24", "gbrp"]
    for name in preferred:
        if name in supported:
            return name
    raise UsageError(f"codec {codec.name} cannot store {width}x{height} frames exactly "
                     f"(it offers {', '.join(sorted(supported)) or 'no pixel formats'}); use libx264")


class VideoWriter:
    """Encodes RGB frames into a video with the timing of a `VideoInfo`; the file appears only on success.

        with VideoWriter("out.mp4", info, width, height) as out:
            for frame in frames:       # exactly info.frame_count frames, (height, width, 3) uint8
                out.write(frame)

    Timing: constant-rate video is written in a 1/fps time base (so the rational fps is exact);
    variable-rate video (`info.pts`) keeps every timestamp in `info.time_base` and every frame's
    duration, the last one from `info.duration`. Containers may round timestamps (Matroska: 1 ms).

    Anamorphic video keeps its sample aspect ratio (`info.sample_aspect`).

    Pixels: H.264 (libx264) yuv420p at CRF 18 by default, tagged BT.601 limited range (the matrix
    swscale uses for RGB->YUV, so players show the colours we encoded). 4:2:0 cannot represent an odd
    width or height, so odd sizes are written as yuv444p (H.264 High 4:4:4, exact W×H; some hardware
    players and browsers do not play it), or as RGB for RGB-only codecs such as libx264rgb.

    `dst` "-" writes to stdout and needs `format` ("nut", "matroska" or "mp4", the last fragmented).
    A real path is written through a temporary file beside it and renamed on success; an error or
    Ctrl-C inside the block leaves nothing. `crf` None means DEFAULT_CRF for codecs that have a CRF
    option; an explicit `crf` for a codec without one is a UsageError.
    """

    def __init__(self, dst: Path | str, info: VideoInfo, width: int, height: int, codec: str = DEFAULT_CODEC,
                 crf: int | None = None, format: str | None = None) -> None:
        self.dst, self.info, self.width, self.height, self.format = dst, info, width, height, format
        self.name = _display_name(dst, "<stdout>")
        if not (1 <= width and 1 <= height):
            raise ValueError(f"output size {width}x{height} must be positive")
        if format is not None and format not in av.formats_available:
            raise UsageError(f"unknown container format {format!r} (e.g. mp4, matroska, nut)")
        if str(dst) == STDIO and format not in PIPE_FORMATS:
            raise UsageError(f"writing video to stdout needs --format {', '.join(PIPE_FORMATS)} (got {format!r})")
        try:
            self._codec = av.Codec(codec, "w")
        except (av.FFmpegError, ValueError) as e:
            raise UsageError(f"unknown video encoder {codec!r} ({_reason(e)})") from e
        if self._codec.type != "video":
            raise UsageError(f"{codec!r} is not a video encoder")
        if crf is not None and codec not in CRF_CODECS:
            raise UsageError(f"codec {codec} has no CRF quality setting; drop --crf "
                             f"(CRF codecs: {', '.join(CRF_CODECS)})")
        if crf is not None and not 0 <= crf <= 63:
            raise UsageError(f"--crf {crf} is outside 0..63")
        if self._codec.name == "libx265" and width < MIN_X265_WIDTH:
            raise UsageError(f"libx265 cannot write video narrower than {MIN_X265_WIDTH} px (x265 crashes on "
                             f"{width}-px frames); use libx264")
        self.crf = crf if crf is not None else DEFAULT_CRF if codec in CRF_CODECS else None
        self.pix_fmt = _pixel_format(self._codec, width, height)
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._stdout: _StoppableOutput | None = None  # "-": what the muxer writes to
        self._audio: list = []  # output streams of `add_audio`, None where the container refused the codec
        self._tracks: list[AudioTrack] = []

    def __enter__(self) -> VideoWriter:
        stack = contextlib.ExitStack()
        try:
            if str(self.dst) == STDIO:
                self._stdout = _StoppableOutput(stdout_bytes())
                target: object = self._stdout
            else:
                target = str(stack.enter_context(atomic_path(Path(self.dst))))
            self._container = self._open(target)
            stack.callback(self._close_after_error)
            self._stream = self._add_stream()
        except BaseException as e:
            stack.__exit__(type(e), e, e.__traceback__)
            raise
        self._stack = stack
        return self

    def _close_after_error(self) -> None:
        """Close the container on the way out of a failure (success closes it before, in `__exit__`).

        An output that already failed (a closed pipe, a full disk) fails again while writing its
        trailer; that second error must not replace the first, which is the one to report.
        """
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()

    def _open(self, target: object) -> av.container.OutputContainer:
        options = PIPE_FORMATS.get(self.format, {}) if str(self.dst) == STDIO else {}
        try:
            return av.open(target, mode="w", format=self.format, options=options)
        except (av.FFmpegError, OSError) as e:
            raise InputError(f"{self.name}: cannot create ({_reason(e)})") from e
        except ValueError as e:  # unknown format name, or a suffix PyAV cannot map to a container
            raise UsageError(f"{self.name}: no container format for this name ({_reason(e)}); "
                             "use .mp4, .mkv or .nut, or give a format") from e

    def _add_stream(self) -> av.video.stream.VideoStream:
        info = self.info
        variable = info.pts is not None
        # A rational rate with a 32-bit numerator/denominator is all x264 takes; for VFR it is only a hint.
        rate = info.fps.limit_denominator(1_000_000) if variable else info.fps
        time_base = info.time_base if variable else 1 / info.fps
        try:
            stream = self._container.add_stream(self._codec.name, rate=rate)
        except ValueError as e:  # e.g. "'webm' format does not support 'libx264' codec"
            raise UsageError(f"{self.name}: {_reason(e)}; pick another codec or container") from e
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        if info.sample_aspect != 1:  # anamorphic source: players stretch the pixels back to its shape
            stream.codec_context.sample_aspect_ratio = info.sample_aspect
        if self.pix_fmt.startswith("yuv"):
            stream.codec_context.colorspace, stream.codec_context.color_range = BT601, LIMITED_RANGE
        if self.crf is not None:
            stream.options = {"crf": str(self.crf), **CRF_CODECS[self._codec.name]}
        if variable:
            # Without B-frames decode order is presentation order, so the muxer's per-sample durations
            # (mp4 stts is built from decode timestamps) are each frame's own, the last one included.
            stream.codec_context.max_b_frames = 0
            ends = [*info.pts[1:], max(round(Fraction(info.duration) / time_base), info.pts[-1] + 1)]
            self._durations = {p: end - p for p, end in zip(info.pts, ends)}
        else:
            self._durations = None
        return stream

    def add_audio(self, tracks: list[AudioTrack]) -> list[str]:
        """Streams for the source's audio tracks (before the first frame); returns the codecs the container refused."""
        if self.frames_written:
            raise ValueError("audio tracks must be added before the first frame")
        self._audio, refused = add_tracks(self._container, tracks)
        self._tracks = tracks
        return refused

    def mux_audio(self, track: int, packets: list[AudioPacket]) -> None:
        """Mux stored packets of track `track` unchanged (skipped when the container refused the track)."""
        if self._audio[track] is None:
            return
        try:
            mux_packets(self._container, self._audio[track], self._tracks[track], packets)
        except (av.FFmpegError, OSError) as e:
            raise RuntimeFailure(f"{self.name}: cannot write audio ({_reason(e)})") from e
        self._raise_stop()

    def write(self, frame: np.ndarray) -> None:
        """Encode one (height, width, 3) uint8 RGB frame."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        n = self.frames_written
        if n >= self.info.frame_count:
            raise ValueError(f"{self.name}: more than the {self.info.frame_count} frames the video has")
        vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vframe.pts = self.info.pts[n] if self.info.pts is not None else n
        self._encode(vframe)
        self.frames_written += 1

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode one frame (None flushes the encoder) and mux what comes out."""
        try:
            for packet in self._stream.encode(frame):
                # Encoders with lookahead leave durations unset; muxers need them for the last frame
                # and for an exact duration (mp4 stts, Matroska block durations).
                packet.duration = 1 if self._durations is None else self._durations.pop(packet.pts, packet.duration)
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as e:
            raise RuntimeFailure(f"{self.name}: cannot write ({_reason(e)})") from e
        self._raise_stop()

    def _raise_stop(self) -> None:
        """Raise a stop signal that arrived inside PyAV's write callback (see `_StoppableOutput`)."""
        if self._stdout is not None and self._stdout.stopped is not None:
            raise self._stdout.stopped

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                if self.frames_written != self.info.frame_count:
                    raise ValueError(f"{self.name}: {self.frames_written} frames written, the video has "
                                     f"{self.info.frame_count}")
                self._encode(None)  # flush the encoder's delayed frames
                self._container.close()  # writes the trailer (mp4 index); closing again is a no-op
                self._raise_stop()
            except (av.FFmpegError, OSError) as e:
                error = RuntimeFailure(f"{self.name}: cannot finish writing ({_reason(e)})")
                stack.__exit__(type(error), error, None)
                raise error from e
            except BaseException as e:
                stack.__exit__(type(e), e, e.__traceback__)
                if isinstance(e, Interrupted):
                    raise self._reported(e) from None
                raise
            stack.close()  # container, then the atomic rename
            if str(self.dst) == STDIO:
                stdout_bytes().flush()
        else:
            stack.__exit__(exc_type, exc, tb)
            if isinstance(exc, Interrupted):
                raise self._reported(exc) from None

    def _reported(self, stop: Interrupted) -> Interrupted:
        """A stop after bytes reached stdout says so: a pipe, unlike a file, cannot take them back."""
        if self._stdout is not None and self._stdout.began:
            return stop.cutting_stdout()
        return stop
