"""What a `.vtw` costs: bytes per tensor or stream, bitrate, bits per latent value, compression.

`VtwFigures.of(header, file_bytes, stats)` works the figures out from a header and the file's size
(and, for an entropy-coded file, the reader's part sizes); `inspect`, `encode`'s result and the
bench read them as fields, and `to_dict()` is the part of `vidtwin inspect --json` they make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from models import VidTwinConfig

from vidtwin_cli.vtw.bytes import ST_DTYPES
from vidtwin_cli.vtw.coded import CodedStats
from vidtwin_cli.vtw.header import ENTROPY, VtwHeader


@dataclass(frozen=True)
class TensorSize:
    """One latent tensor of a raw (1.x) file, as stored."""

    dtype: str  # safetensors dtype name, e.g. "F16"
    shape: tuple[int, ...]
    bytes: int


@dataclass(frozen=True)
class StreamSize:
    """One latent tensor of an entropy-coded (2.0) file: its ideal code length under the file's tables
    (the range coder meets it within a few bytes per clip)."""

    bytes: int
    bits_per_value: float


@dataclass(frozen=True)
class CodedParts:
    """Where the bytes of an entropy-coded file go."""

    streams: dict[str, StreamSize]  # per latent tensor
    chunks: dict[str, int]  # bytes per chunk type, sorted by type
    key_clips: int


@dataclass(frozen=True)
class VtwFigures:
    """The size figures of one `.vtw`.

    bits_per_value counts every byte of the file against its latent values; compression_vs_raw is raw
    RGB24 bytes / file bytes; compression_rate is the paper's latent values / input values of one model
    clip. `tensors` is empty for an entropy-coded file, whose sizes are in `coded` (when the reader
    supplied them).
    """

    header: VtwHeader
    file_bytes: int
    tensors: dict[str, TensorSize]
    tensor_bytes: int  # the latents' share of file_bytes: tensors, or the CLIP chunks of a coded file
    coded: CodedParts | None = None

    @classmethod
    def of(cls, header: VtwHeader, file_bytes: int, stats: CodedStats | None = None) -> VtwFigures:
        if header.dtype == ENTROPY:
            coded = None if stats is None else CodedParts(
                {key: StreamSize(round(bits / 8), bits / (header.rows * header.model.config.latent_values
                                                          * _share(header.model.config, key)))
                 for key, bits in stats.stream_bits.items()},
                dict(sorted(stats.chunk_bytes.items())), stats.key_clips)  # fmt: skip
            payload = 0 if stats is None else stats.chunk_bytes.get("CLIP", 0)
            return cls(header, file_bytes, {}, payload, coded)
        tensors = {key: TensorSize(dt, tuple(shape), math.prod(shape) * ST_DTYPES[dt].itemsize)
                   for key, (dt, shape) in header.layout().items()}  # fmt: skip
        return cls(header, file_bytes, tensors, sum(t.bytes for t in tensors.values()))

    @property
    def overhead_bytes(self) -> int:
        return self.file_bytes - self.tensor_bytes

    @property
    def latent_values(self) -> int:
        return self.header.rows * self.header.model.config.latent_values

    @property
    def latent_values_per_clip(self) -> int:
        return self.header.tiles_per_clip * self.header.model.config.latent_values

    @property
    def bits_per_value(self) -> float | None:
        return self.file_bytes * 8 / self.latent_values if self.latent_values else None

    @property
    def bytes_per_second(self) -> float | None:
        duration = self.header.video.duration
        return self.file_bytes / duration if duration > 0 else None

    @property
    def bitrate_bps(self) -> float | None:
        duration = self.header.video.duration
        return self.file_bytes * 8 / duration if duration > 0 else None

    @property
    def key_interval(self) -> int:
        """Clips from one key clip to the next (every clip stands alone in a raw file)."""
        return self.header.keyint if self.header.dtype == ENTROPY else 1

    @property
    def raw_rgb24_bytes(self) -> int:
        video = self.header.video
        return video.frame_count * video.width * video.height * 3

    @property
    def compression_vs_raw(self) -> float | None:
        return self.raw_rgb24_bytes / self.file_bytes if self.file_bytes > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The header's fields, then these figures (the `vidtwin inspect --json` object less its file facts)."""
        header, video = self.header, self.header.video
        summary = header.to_dict()
        summary["video"]["variable_frame_rate"] = video.pts is not None
        out = {
            **summary,
            "rows": header.rows,
            "tensors": {key: {"dtype": t.dtype, "shape": list(t.shape), "bytes": t.bytes} for key, t in self.tensors.items()},
            "file_bytes": self.file_bytes,
            "tensor_bytes": self.tensor_bytes,
            "overhead_bytes": self.overhead_bytes,
            "latent_values": self.latent_values,
            "latent_values_per_clip": self.latent_values_per_clip,
            "bits_per_value": self.bits_per_value,
            "bytes_per_second": self.bytes_per_second,
            "key_interval": self.key_interval,
            "compression_rate": header.model.config.compression_rate,
            "raw_rgb24_bytes": self.raw_rgb24_bytes,
            "compression_vs_raw": self.compression_vs_raw,
            "bitrate_bps": self.bitrate_bps,
        }  # fmt: skip
        if self.coded is not None:
            out["streams"] = {key: {"bytes": s.bytes, "bits_per_value": s.bits_per_value} for key, s in self.coded.streams.items()}
            out["chunks"] = self.coded.chunks
            out["key_clips"] = self.coded.key_clips
        return out


def _share(cfg: VidTwinConfig, key: str) -> float:
    """The fraction of a row's latent values that tensor `key` holds."""
    shape = cfg.structure_shape if key == "structure" else cfg.dynamics_shape
    return math.prod(shape) / cfg.latent_values
