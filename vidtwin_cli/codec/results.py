"""What a codec job reports: one frozen dataclass per job, whose `to_json()` is the `--json` object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class JsonResult:
    """`to_json()`: the result as a JSON-ready dict, fields in declaration order."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class VideoJobResult(JsonResult):
    """What every job between a video and its latents reports."""

    input: str
    output: str
    frames: int
    width: int
    height: int
    fps: float
    seconds: float
    device: str  # where the model ran, e.g. "cpu", "cuda:0"
    precision: str  # fp32, bf16 or fp16 (what "auto" chose)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds


@dataclass(frozen=True)
class EncodeResult(VideoJobResult):
    """A video encoded to a `.vtw` file."""

    clips: int
    tiles_per_clip: int
    bytes: int
    bitrate_kbps: float | None  # None for a zero-length video
    compression_rate: float  # the paper's latent values / input values
    compression_vs_raw: float | None  # raw RGB24 bytes / file bytes
    input_bytes: int | None  # size of the input file (None for stdin or frames in memory)
    latent_dtype: str
    step: float | None = None  # entropy coding: the quantisation step
    keyint: int | None = None  # entropy coding: the key clip interval
    bits_per_value: float | None = None  # file bytes · 8 / latent values
    audio_tracks: int = 0  # audio streams kept as packets


@dataclass(frozen=True)
class DecodeResult(VideoJobResult):
    """A `.vtw` decoded to a video file."""

    only: str | None
    range_frames: list[int] | None = None  # [first, stop) frames of the source decoded (--range)
    range_start_s: float | None = None  # the source time of the first of them


@dataclass(frozen=True)
class SwapResult(JsonResult):
    """Structure of one `.vtw` with the dynamics of another, written as video or as a `.vtw`."""

    structure: str
    dynamics: str
    output: str
    frames: int
    clips_swapped: int
    range: str | None
    bytes: int | None  # of a .vtw output; None for video
    seconds: float
    device: str
    precision: str

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if k != "bytes" or v is not None}
