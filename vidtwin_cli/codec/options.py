"""What a codec job is asked to do: frozen option sets, each validated once on construction.

The CLI builds these from its flags, `vidtwin batch` ships them to its workers, the Python API takes
them as arguments: a bad value fails here, with the flag's name, before any file is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from vidtwin_cli.defaults import DEFAULT_MAX_SIDE
from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.video.info import MAX_SIDE, FitMode, Geometry, VideoInfo, check_fit
from vidtwin_cli.video.io import DEFAULT_CODEC, Trim, VideoWriter
from vidtwin_cli.video.span import Span
from vidtwin_cli.vtw.coded import EntropyCoding
from vidtwin_cli.vtw.container import Storage
from vidtwin_cli.vtw.entropy import DEFAULT_KEYINT, DEFAULT_QUALITY
from vidtwin_cli.vtw.header import ENTROPY, LatentDtype, check_latent_dtype

Only = Literal["structure", "dynamics"]
ONLY: tuple[str, ...] = ("structure", "dynamics")
# A stand-in video for checking encoder flags before any output exists (wide enough for libx265).
_PREFLIGHT_SIDE = 64
MAX_REFINE_STEPS = 1000  # beyond it the gain has long stopped (docs/model-card.md)
_PREFLIGHT_VIDEO = VideoInfo(_PREFLIGHT_SIDE, _PREFLIGHT_SIDE, Fraction(25), Fraction(1, 25), 1, 0.04)


@dataclass(frozen=True)
class EncodeOptions:
    """How frames become latents and how the latents are stored."""

    fit: FitMode = "tile"  # tile (exact size), resize, or crop (the official centre crop)
    dtype: LatentDtype = ENTROPY  # latent storage: entropy-coded (.vtw 2.0) or a raw dtype (.vtw 1.x)
    sample: bool = False  # posterior samples instead of means
    seed: int | None = None  # for `sample`
    quality: int = DEFAULT_QUALITY  # entropy: the quantisation step relative to the latents' spread
    step: float | None = None  # entropy: the step in latent units (overrides quality)
    keyint: int = DEFAULT_KEYINT  # entropy: a key clip every keyint clips
    audio: bool = True  # keep the source's audio packets (entropy-coded files only)
    trim: Trim = Trim()  # the part of the video to encode (--start/--duration/--frames); all of it by default
    strict: bool = False  # a damaged or cut input is an error, not a warning that names the frames kept
    refine: int = 0  # steps of search for better latents after the encoder (codec/refine.py); 0: none

    def __post_init__(self) -> None:
        check_fit(self.fit)
        if not 0 <= self.refine <= MAX_REFINE_STEPS:
            raise UsageError(f"--refine {self.refine} is outside 0..{MAX_REFINE_STEPS}")
        check_latent_dtype(self.dtype)
        EntropyCoding(self.quality, self.step, self.keyint)  # checks --quality / --step / --keyint
        if self.seed is not None and not self.sample:
            raise UsageError("--seed only applies with --sample")

    @property
    def storage(self) -> Storage:
        """What the .vtw writer is given: `EntropyCoding`, or the raw dtype."""
        return EntropyCoding(self.quality, self.step, self.keyint) if self.dtype == ENTROPY else self.dtype

    @property
    def provenance(self) -> dict[str, Any]:
        """What the encoder was asked that the header's own fields cannot tell, kept in the file's provenance.

        A file records its step, not the `quality` that chose it (the step follows the first clip's
        spread), nor the `refine` steps or the trimmed span: `vidtwin batch` compares this record to decide
        whether an output was made as asked. Empty (nothing recorded) for a plain raw-dtype encode.
        """
        asked: dict[str, Any] = {}
        if self.dtype == ENTROPY:
            asked |= {"step": self.step} if self.step is not None else {"quality": self.quality}
        if self.refine:
            asked["refine"] = self.refine
        if not self.trim.whole:
            asked["trim"] = {k: v for k, v in dataclasses.asdict(self.trim).items() if v is not None}
        return {"encode": asked} if asked else {}


@dataclass(frozen=True)
class DecodeOptions:
    """Which latents to decode, which part of the video, and whether other weights than the file's may do it."""

    only: Only | None = None  # decode one latent alone
    force: bool = False  # decode with weights other than those the file records (warns)
    span: str | None = None  # the part to decode, `--range` syntax (video/span.py); None: all of it

    def __post_init__(self) -> None:
        if self.only is not None and self.only not in ONLY:
            raise UsageError(f"--only must be one of {', '.join(ONLY)}")
        _ = self.range  # a bad range fails here, before any file is read

    @property
    def range(self) -> Span | None:
        return Span.parse(self.span) if self.span is not None else None


@dataclass(frozen=True)
class SwapOptions:
    """Cross-reenactment: which span of the dynamics video is swapped, and .vtw storage."""

    span: str | None = None  # the part of the dynamics video swapped, `--range` syntax (video/span.py); None: all
    dtype: LatentDtype = ENTROPY  # latent storage when the output is a .vtw (entropy: the dynamics file's step)
    force: bool = False  # as DecodeOptions.force

    def __post_init__(self) -> None:
        check_latent_dtype(self.dtype)
        _ = self.range  # a bad range fails here, before any file is read

    @property
    def range(self) -> Span | None:
        return Span.parse(self.span) if self.span is not None else None


@dataclass(frozen=True)
class VideoOutput:
    """How decoded frames are written: encoder, quality, (for pipes) container format, largest size.

    Encoder, CRF and format are checked on construction, so a bad flag stops a job (or a whole batch)
    before any model loads or any file is made.
    """

    codec: str = DEFAULT_CODEC
    crf: int | None = None
    format: str | None = None
    max_side: int = DEFAULT_MAX_SIDE  # pixels; a .vtw that decodes to larger frames is refused

    def __post_init__(self) -> None:
        if not 1 <= self.max_side <= MAX_SIDE:
            raise UsageError(f"--max-side {self.max_side} is outside 1..{MAX_SIDE} (the .vtw format's limit)")
        VideoWriter(f"check.{self.format or 'mp4'}", _PREFLIGHT_VIDEO, _PREFLIGHT_SIDE, _PREFLIGHT_SIDE,
                    self.codec, self.crf, self.format)  # built, never opened: checks the flags, touches nothing

    def check_size(self, geometry: Geometry, name: str) -> None:
        """Refuse frames larger than `max_side`: a few bytes of .vtw (fit=resize) can claim any size."""
        width, height = geometry.output_size
        if max(width, height) > self.max_side:
            raise InputError(f"{name} decodes to {width}x{height} frames, beyond the {self.max_side}-pixel limit "
                             f"(--max-side {self.max_side}); pass --max-side {max(width, height)} if it is intended")
