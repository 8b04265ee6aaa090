"""Classical codecs as a baseline: x264/x265 through PyAV at a chosen size, and their decoded frames.

`encode_at_bytes` searches the constant-rate-factor (fractional CRF) until the encoded stream is
within a tolerance of a byte target (the .vtw size): size falls roughly exponentially with CRF, so
a secant step on log(bytes) converges in a few encodes. Sizes are elementary-stream bytes (every
packet, SPS/PPS included; no container), see docs/bench.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError, UsageError
from .video_io import VideoReader

BASELINE_CODECS = {"libx264": "h264", "libx265": "hevc"}  # encoder -> decoder
CRF_RANGE = (0.0, 51.0)
START_CRF = 28.0
CRF_SLOPE = math.log(2) / 6  # x264 rule of thumb: +6 CRF halves the size
MAX_ENCODES = 10
PRESET = "medium"


@dataclass(frozen=True)
class EncodedStream:
    """A baseline encode held in memory."""

    codec: str
    crf: float
    packets: tuple[bytes, ...]
    width: int
    height: int
    pix_fmt: str

    @property
    def bytes(self) -> int:
        return sum(len(p) for p in self.packets)


def available_codecs() -> list[str]:
    """The baseline encoders this PyAV build offers, in preference order."""
    out = []
    for name in BASELINE_CODECS:
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        out.append(name)
    return out


def _options(codec: str, crf: float) -> dict[str, str]:
    opts = {"crf": f"{crf:.3f}", "preset": PRESET}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    return opts


def encode_frames(frames: Iterable[np.ndarray], fps: Fraction, codec: str, crf: float) -> EncodedStream:
    """Encode RGB uint8 frames (H, W, 3) at a CRF; 4:2:0 for even sizes, 4:4:4 otherwise."""
    if codec not in BASELINE_CODECS:
        raise UsageError(f"unknown baseline codec {codec!r} (use {', '.join(BASELINE_CODECS)})")
    ctx: av.VideoCodecContext | None = None
    packets: list[bytes] = []
    width = height = 0
    pix_fmt = "yuv420p"
    for i, rgb in enumerate(frames):
        if ctx is None:
            height, width = rgb.shape[:2]
            pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            ctx = av.CodecContext.create(codec, "w")
            ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
            ctx.time_base, ctx.framerate = 1 / fps, fps
            ctx.options = _options(codec, crf)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        frame.pts = i
        packets.extend(bytes(p) for p in ctx.encode(frame))
    if ctx is None:
        raise InputError("no frames to encode")
    packets.extend(bytes(p) for p in ctx.encode(None))  # flush the encoder
    return EncodedStream(codec, crf, tuple(packets), width, height, pix_fmt)


def decode_stream(stream: EncodedStream) -> Iterator[np.ndarray]:
    """The decoded frames of an `EncodedStream`, RGB uint8 (H, W, 3)."""
    ctx = av.CodecContext.create(BASELINE_CODECS[stream.codec], "r")
    for data in (*stream.packets, None):
        for frame in ctx.decode(av.Packet(data) if data is not None else None):
            yield np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def encode_at_bytes(
    src: Path | str,
    target_bytes: int,
    codec: str = "libx264",
    tolerance: float = 0.05,
    progress: Callable[[int], None] | None = None,
) -> tuple[EncodedStream, dict]:
    """Encode `src` with `codec` at the CRF whose size is closest to `target_bytes`.

    Returns the stream and a search report: {"target_bytes", "bytes", "crf", "encodes",
    "matched" (within `tolerance`), "size_ratio"}. Each trial re-reads `src` (constant memory).
    `progress` advances by one per trial encode.
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    lo, hi = CRF_RANGE
    tried: list[tuple[float, EncodedStream]] = []
    crf = START_CRF
    for _ in range(MAX_ENCODES):
        with VideoReader(src) as video:
            stream = encode_frames(video, video.fps, codec, crf)
        tried.append((crf, stream))
        if progress:
            progress(1)
        error = math.log(stream.bytes / target_bytes)
        if abs(stream.bytes / target_bytes - 1) <= tolerance:
            break
        slope = CRF_SLOPE
        if len(tried) >= 2:  # secant on log(bytes) against CRF, kept within plausible slopes
            (c0, s0), (c1, s1) = tried[-2], tried[-1]
            if c0 != c1 and s0.bytes != s1.bytes:
                slope = min(max(-math.log(s1.bytes / s0.bytes) / (c1 - c0), 0.02), 0.5)
        nxt = min(max(crf + error / slope, lo), hi)
        if nxt == crf or any(abs(nxt - c) < 1e-3 for c, _ in tried):  # at a bound, or cycling
            break
        crf = nxt
    crf, best = min(tried, key=lambda cs: abs(math.log(cs[1].bytes / target_bytes)))
    return best, {
        "target_bytes": target_bytes,
        "bytes": best.bytes,
        "crf": round(crf, 3),
        "encodes": len(tried),
        "size_ratio": best.bytes / target_bytes,
        "matched": abs(best.bytes / target_bytes - 1) <= tolerance,
    }
