"""Classical codecs as a baseline: x264/x265 through PyAV at a chosen size, and their decoded frames.

`encode_at_bytes` searches the constant-rate-factor (fractional CRF) until the encoded stream is
within a tolerance of a byte target (the .vtw size): size falls roughly exponentially with CRF, so
a secant step on log(bytes) converges in a few encodes. Where CRF cannot get there (past CRF 51,
or into x264's jump to lossless at CRF 0) it searches the average bitrate (ABR) instead, scaling
the bitrate by target / actual. Every encode is muxed into an in-memory `.mp4` and its size is the
whole file's (container, headers and every packet), as a `.vtw`'s is; see docs/bench.md.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidtwin_cli.callbacks import Progress
from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.video.io import MIN_X265_WIDTH, VideoReader

BASELINE_CODECS = ("libx264", "libx265")
CRF_RANGE = (0.0, 51.0)
START_CRF = 28.0
CRF_SLOPE = math.log(2) / 6  # x264 rule of thumb: +6 CRF halves the size
MAX_ENCODES = 10  # per search (CRF, then ABR)
PRESET = "medium"  # x264/x265's default; `bench --rd` also sweeps RD_PRESETS
RD_PRESETS = ("medium", "veryslow")
CONTAINER = "mp4"


@dataclass(frozen=True)
class EncodedStream:
    """A baseline encode held in memory as a whole `.mp4` file: CRF mode, or average-bitrate mode when
    `bit_rate` is set."""

    codec: str
    crf: float | None
    bit_rate: int | None
    preset: str
    data: bytes  # the .mp4 file
    width: int
    height: int
    pix_fmt: str
    frames: int
    fps: Fraction

    @property
    def bytes(self) -> int:
        """Every byte of the file: container, codec headers and packets."""
        return len(self.data)

    @property
    def duration(self) -> float:
        """Seconds at the constant frame rate it was encoded with."""
        return self.frames / float(self.fps)


def unavailable(codec: str, width: int | None = None) -> str | None:
    """Why this PyAV build cannot be the baseline `codec` for frames `width` px wide, or None when it can."""
    if codec == "libx265" and width is not None and width < MIN_X265_WIDTH:
        return f"x265 crashes on frames under {MIN_X265_WIDTH} px wide"
    try:
        av.codec.Codec(codec, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return f"this PyAV build's ffmpeg has no {codec} encoder"
    return None


def available_codecs(width: int | None = None) -> list[str]:
    """The baseline encoders this PyAV build offers (for frames `width` px wide), in preference order."""
    return [name for name in BASELINE_CODECS if unavailable(name, width) is None]


def _options(codec: str, crf: float | None, preset: str) -> dict[str, str]:
    opts = {"preset": preset} | ({"crf": f"{crf:.3f}"} if crf is not None else {})
    if codec == "libx265":  # info=0: no ~2 KB SEI of x265's version and settings in every file
        opts["x265-params"] = "log-level=error:info=0"
    return opts


def encode_frames(frames: Iterable[np.ndarray], fps: Fraction, codec: str, crf: float | None = None,
                  bit_rate: int | None = None, preset: str = PRESET) -> EncodedStream:  # fmt: skip
    """Encode RGB uint8 frames (H, W, 3) at a CRF or an average bitrate (bit/s) into an in-memory .mp4;
    4:2:0 for even sizes, else 4:4:4."""
    if (crf is None) == (bit_rate is None):
        raise ValueError("give exactly one of crf and bit_rate")
    if codec not in BASELINE_CODECS:
        raise UsageError(f"unknown baseline codec {codec!r} (use {', '.join(BASELINE_CODECS)})")
    buffer = io.BytesIO()
    width = height = count = 0
    pix_fmt = "yuv420p"
    with av.open(buffer, "w", format=CONTAINER) as container:
        stream: av.VideoStream | None = None
        for i, rgb in enumerate(frames):
            if stream is None:
                height, width = rgb.shape[:2]
                pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                if bit_rate is not None:
                    stream.codec_context.bit_rate = bit_rate
                stream.options = _options(codec, crf, preset)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            count += 1
            container.mux(stream.encode(frame))
        if stream is None:
            raise InputError("no frames to encode")
        container.mux(stream.encode(None))  # flush the encoder
    return EncodedStream(codec, crf, bit_rate, preset, buffer.getvalue(), width, height, pix_fmt, count, fps)


def decode_stream(stream: EncodedStream) -> Iterator[np.ndarray]:
    """The decoded frames of an `EncodedStream`, RGB uint8 (H, W, 3)."""
    with av.open(io.BytesIO(stream.data)) as container:
        for frame in container.decode(video=0):
            yield np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


@dataclass
class _Search:
    """One byte-target search: every trial encode is kept for the final choice."""

    src: Path | str
    codec: str
    target: int
    tolerance: float
    progress: Progress | None
    tried: list[EncodedStream] = field(default_factory=list)

    def matched(self, stream: EncodedStream) -> bool:
        return abs(stream.bytes / self.target - 1) <= self.tolerance

    def trial(self, crf: float | None = None, bit_rate: int | None = None) -> EncodedStream:
        """Encode `src` once more (re-read, constant memory) in CRF or ABR mode and record it."""
        with VideoReader(self.src) as video:
            stream = encode_frames(video, video.fps, self.codec, crf, bit_rate)
        self.tried.append(stream)
        if self.progress:
            self.progress(1)
        return stream


def _crf_search(search: _Search) -> None:
    lo, hi = CRF_RANGE
    crf = START_CRF
    for _ in range(MAX_ENCODES):
        stream = search.trial(crf=crf)
        if search.matched(stream):
            return
        slope = CRF_SLOPE
        crfs = [t for t in search.tried if t.crf is not None]
        if len(crfs) >= 2:  # secant on log(bytes) against CRF, kept within plausible slopes
            a, b = crfs[-2], crfs[-1]
            if a.crf != b.crf and a.bytes != b.bytes:
                slope = min(max(-math.log(b.bytes / a.bytes) / (b.crf - a.crf), 0.02), 0.5)
        nxt = min(max(crf + math.log(stream.bytes / search.target) / slope, lo), hi)
        if any(abs(nxt - t.crf) < 1e-3 for t in crfs):  # at a bound, or cycling: CRF cannot get there
            return
        crf = nxt


def _abr_search(search: _Search) -> None:
    bit_rate = max(int(search.target * 8 / search.tried[0].duration), 1000)
    for _ in range(MAX_ENCODES):
        stream = search.trial(bit_rate=bit_rate)
        if search.matched(stream):
            return
        bit_rate = max(int(bit_rate * search.target / stream.bytes), 1000)


def encode_at_bytes(
    src: Path | str,
    target_bytes: int,
    codec: str = "libx264",
    tolerance: float = 0.05,
    progress: Progress | None = None,
) -> tuple[EncodedStream, dict]:
    """Encode `src` with `codec` as close as it gets to `target_bytes`: CRF search, then ABR search.

    Returns the stream and a search report: {"target_bytes", "bytes", "mode" ("crf" or "abr"),
    "crf", "bit_rate", "encodes", "size_ratio", "matched" (within `tolerance`)}. Each trial re-reads
    `src` (constant memory); `progress` advances by one per trial encode.
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    search = _Search(src, codec, target_bytes, tolerance, progress)
    _crf_search(search)
    if not search.matched(search.tried[-1]):
        _abr_search(search)
    best = min(search.tried, key=lambda t: abs(math.log(t.bytes / target_bytes)))
    return best, {
        "target_bytes": target_bytes,
        "bytes": best.bytes,
        "mode": "crf" if best.crf is not None else "abr",
        "crf": round(best.crf, 3) if best.crf is not None else None,
        "bit_rate": best.bit_rate,
        "encodes": len(search.tried),
        "size_ratio": best.bytes / target_bytes,
        "matched": search.matched(best),
    }
