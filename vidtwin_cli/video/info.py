"""What must survive a round trip: a video's geometry and timing, and how frames map to model tiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Literal

from vidtwin_cli.errors import InputError, UsageError

MAX_SIDE = 16384  # larger frames are refused (no codec in use produces them)
MAX_FRAMES = 10_000_000
FIT_MODES = ("tile", "resize", "crop")
FitMode = Literal["tile", "resize", "crop"]


def check_fit(fit: str) -> None:
    """The one check of a requested fit mode (`--fit`)."""
    if fit not in FIT_MODES:
        raise UsageError(f"--fit must be one of {', '.join(FIT_MODES)}")


def _fraction(value: object, name: str) -> Fraction:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value) and value[1] > 0):
        raise InputError(f"video.{name} must be [numerator, denominator], got {value!r}")
    return Fraction(value[0], value[1])


@dataclass(frozen=True)
class VideoInfo:
    """Source geometry and timing, read once while streaming and restored exactly on decode."""

    width: int
    height: int
    fps: Fraction  # average frame rate (rational, e.g. 30000/1001)
    time_base: Fraction  # unit of `pts`
    frame_count: int  # frames actually decoded
    duration: float  # seconds
    pts: tuple[int, ...] | None = None  # per-frame timestamps in time_base units, kept for variable frame rate
    codec: str = ""  # source codec name (informational)
    sample_aspect: Fraction = Fraction(1)  # pixel width / height; not 1 for anamorphic video (DVD, HDV)

    def __post_init__(self) -> None:
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise InputError(f"video size {self.width}x{self.height} is outside 1..{MAX_SIDE}")
        if not 1 <= self.frame_count <= MAX_FRAMES:
            raise InputError(f"frame count {self.frame_count} is outside 1..{MAX_FRAMES}")
        if self.fps <= 0 or self.time_base <= 0:
            raise InputError(f"fps {self.fps} and time base {self.time_base} must be positive")
        if not 0 < self.sample_aspect < 1000:
            raise InputError(f"sample aspect ratio {self.sample_aspect} is outside (0, 1000)")
        if self.pts is not None and len(self.pts) != self.frame_count:
            raise InputError(f"{len(self.pts)} timestamps for {self.frame_count} frames")
        if self.pts is not None and any(b <= a for a, b in zip(self.pts, self.pts[1:])):
            raise InputError("frame timestamps must strictly increase")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fps"] = [self.fps.numerator, self.fps.denominator]
        d["time_base"] = [self.time_base.numerator, self.time_base.denominator]
        d["pts"] = list(self.pts) if self.pts is not None else None
        if self.sample_aspect == 1:  # square pixels are the default; files without the key stay format 1.0
            del d["sample_aspect"]
        else:
            d["sample_aspect"] = [self.sample_aspect.numerator, self.sample_aspect.denominator]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VideoInfo:
        try:
            pts = d.get("pts")
            return cls(
                width=int(d["width"]),
                height=int(d["height"]),
                fps=_fraction(d["fps"], "fps"),
                time_base=_fraction(d["time_base"], "time_base"),
                frame_count=int(d["frame_count"]),
                duration=float(d["duration"]),
                pts=tuple(int(p) for p in pts) if pts is not None else None,
                codec=str(d.get("codec", "")),
                sample_aspect=_fraction(d.get("sample_aspect", [1, 1]), "sample_aspect"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"bad video description: {e}") from e


@dataclass(frozen=True)
class Geometry:
    """How a W×H frame maps onto model tiles of `tile`×`tile` pixels.

    tile:   a rows×cols grid of tiles covers the frame; the right/bottom edge is padded
            (pad_right/pad_bottom pixels) and trimmed again on decode, so W×H is exact.
    resize: the frame is scaled to one tile and back (1×1 grid).
    crop:   short side scaled to the tile, centre crop (1×1 grid); lossy in area, the decoded
            video is tile×tile.
    """

    fit: FitMode
    tile: int
    width: int
    height: int
    rows: int
    cols: int
    pad_right: int = 0
    pad_bottom: int = 0

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise InputError(f"unknown fit mode {self.fit!r} (use {', '.join(FIT_MODES)})")
        if min(self.tile, self.width, self.height, self.rows, self.cols) < 1 or min(self.pad_right, self.pad_bottom) < 0:
            raise InputError(f"impossible geometry {self}")
        if self.fit == "tile" and (
            self.rows * self.tile != self.height + self.pad_bottom or self.cols * self.tile != self.width + self.pad_right
        ):
            raise InputError(f"tile grid {self.rows}x{self.cols} of {self.tile} does not cover {self.width}x{self.height}")
        if self.fit != "tile" and (self.rows, self.cols, self.pad_right, self.pad_bottom) != (1, 1, 0, 0):
            raise InputError(f"fit {self.fit!r} uses a single tile")

    @property
    def tiles_per_clip(self) -> int:
        return self.rows * self.cols

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the decoded video."""
        return (self.tile, self.tile) if self.fit == "crop" else (self.width, self.height)

    @classmethod
    def plan(cls, width: int, height: int, tile: int, fit: FitMode = "tile") -> Geometry:
        """The geometry for a W×H source and a model tile size."""
        if fit == "tile":
            rows, cols = -(-height // tile), -(-width // tile)
            return cls(fit, tile, width, height, rows, cols, cols * tile - width, rows * tile - height)
        return cls(fit, tile, width, height, 1, 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        try:
            return cls(**{k: (d[k] if k == "fit" else int(d[k])) for k in
                          ("fit", "tile", "width", "height", "rows", "cols", "pad_right", "pad_bottom")})
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"bad geometry description: {e}") from e
