"""vidtwin as a library: load a model, encode video to latents, decode them, swap, read `.vtw` files.

    import vidtwin_cli as vt

    model = vt.load_model("default")                        # the bundled model, on the CPU in fp32
    result = vt.encode("clip.mp4", "clip.vtw", model=model)  # -> EncodeResult (.to_json())
    for frame in vt.decode("clip.vtw", model=model):         # (H, W, 3) uint8, streamed clip by clip
        ...

Every function raises the `vidtwin_cli.errors` family (`VidtwinError` and its subclasses) and
nothing else for bad input. Options are frozen dataclasses validated on construction; results are
dataclasses whose `to_json()` is what the CLI's `--json` prints. docs/api.md has an example per
entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import overload

import numpy as np

from vidtwin_cli.callbacks import OnStart, Progress, Warn
from vidtwin_cli.codec.model_info import ModelInfo  # noqa: F401 (re-exported: `ModelSession.info`)
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.runtime import AUTO
from vidtwin_cli.codec.options import DecodeOptions, EncodeOptions, SwapOptions, VideoOutput
from vidtwin_cli.codec.pipeline import (
    LatentSource, VideoSource, decode_vtw, encode_latents, encode_video, iter_decoded,
)  # fmt: skip
from vidtwin_cli.codec.results import DecodeResult, EncodeResult, SwapResult
from vidtwin_cli.codec.swap import SwapSource, swap_vtw
from vidtwin_cli.codec.weights import DEFAULT_MODEL, SAMPLE_CLIP
from vidtwin_cli.errors import ContainerError, InputError, ModelError, RuntimeFailure, UsageError, VidtwinError  # noqa: F401 (re-exported)
from vidtwin_cli.video.io import Trim
from vidtwin_cli.vtw.container import Inspection, VerifyReport, VtwFile, inspect_vtw, read_vtw, verify_vtw, write_vtw
from vidtwin_cli.vtw.figures import VtwFigures  # noqa: F401 (re-exported: `Inspection.figures`)

ModelArg = ModelSession | str | None  # a loaded model, a spec to load, or None (the default / the file's own)


def load_model(
    spec: str = DEFAULT_MODEL,
    device: str = AUTO,
    precision: str = AUTO,
    *,
    batch_size: int = 8,
    compile: bool = False,
    warn: Warn | None = None,
) -> ModelSession:
    """Load a model now: "default" (bundled), a preset name, a `.safetensors` path or a hub id.

    `device` is auto (CUDA when present), cpu, cuda or cuda:N; `precision` auto (fp16 on CUDA, bf16 on a
    CPU with native bf16, else fp32), fp32, bf16 or fp16 (CUDA only). `warn`
    receives the one-line warnings of the work done with this model (default: the `logging` module).
    """
    session = ModelSession(spec, device, precision, batch_size, **({"warn": warn} if warn else {}), compile=compile)
    session.load()
    return session


def _session(model: ModelArg) -> ModelSession:
    return model if isinstance(model, ModelSession) else ModelSession(model)


@overload
def encode(source: VideoSource, output: None = None, *, model: ModelArg = None, options: EncodeOptions = ...,
           fps: float | Fraction | None = None, format: str | None = None, progress: Progress | None = None,
           on_start: OnStart | None = None) -> VtwFile: ...
@overload
def encode(source: VideoSource, output: Path | str, *, model: ModelArg = None, options: EncodeOptions = ...,
           fps: float | Fraction | None = None, format: str | None = None, progress: Progress | None = None,
           on_start: OnStart | None = None) -> EncodeResult: ...
def encode(
    source: VideoSource,
    output: Path | str | None = None,
    *,
    model: ModelArg = None,
    options: EncodeOptions = EncodeOptions(),
    fps: float | Fraction | None = None,
    format: str | None = None,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> VtwFile | EncodeResult:
    """Encode a video file ("-": stdin, with `format`) or (T, H, W, 3) uint8 frames (with `fps`).

    With `output` the latents go to that `.vtw` ("-": stdout) and an `EncodeResult` comes back;
    without, the `VtwFile` (header + float32 `Latents`) is returned in memory. `on_start(total)` is
    called once the (estimated) frame count is known, `progress(n)` with the frames done per clip.
    """
    session = _session(model)
    if output is None:
        return encode_latents(source, session, options, fps=fps, format=format, progress=progress, on_start=on_start)
    return encode_video(source, output, session, options, fps=fps, format=format, progress=progress, on_start=on_start)


@overload
def decode(source: LatentSource, output: None = None, *, model: ModelArg = None, options: DecodeOptions = ...,
           video: VideoOutput | None = None, progress: Progress | None = None,
           on_start: OnStart | None = None) -> Iterator[np.ndarray]: ...
@overload
def decode(source: LatentSource, output: Path | str, *, model: ModelArg = None, options: DecodeOptions = ...,
           video: VideoOutput | None = None, progress: Progress | None = None,
           on_start: OnStart | None = None) -> DecodeResult: ...
def decode(
    source: LatentSource,
    output: Path | str | None = None,
    *,
    model: ModelArg = None,
    options: DecodeOptions = DecodeOptions(),
    video: VideoOutput | None = None,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> Iterator[np.ndarray] | DecodeResult:
    """Decode a `.vtw` ("-": stdin) or an in-memory `VtwFile` with the source's frame count.

    With `output` a video file is written (`video`: encoder, CRF, pipe format) and a
    `DecodeResult` comes back; without, an iterator of (H, W, 3) uint8 frames, decoded one clip at
    a time as it is consumed. Without `model`, the model the latents record is loaded.
    """
    session = _session(model)
    if output is None:
        return iter_decoded(source, session, options, progress, on_start)
    return decode_vtw(source, output, session, options, video, progress=progress, on_start=on_start)


def swap(
    structure: SwapSource,
    dynamics: SwapSource,
    output: Path | str,
    *,
    model: ModelArg = None,
    options: SwapOptions = SwapOptions(),
    video: VideoOutput | None = None,
    progress: Progress | None = None,
    on_start: OnStart | None = None,
) -> SwapResult:
    """The structure of one clip moved by the dynamics of another: the structure's size, the dynamics' timeline.

    Each source is a `.vtw` (or a `VtwFile`) or a video file; sources of different sizes work (the
    dynamics are encoded again on the structure's tile grid). An `output` ending in `.vtw` stores the
    swapped latents; anything else is a video file.
    """
    return swap_vtw(structure, dynamics, output, _session(model), options, video, progress=progress,
                    on_start=on_start)


def read(source: Path | str) -> VtwFile:
    """A whole `.vtw` ("-": stdin), validated: header and float32 latents."""
    return read_vtw(source)


def write(output: Path | str, vtw: VtwFile) -> int:
    """Write a `VtwFile` atomically, its latents stored as `vtw.header.dtype`; returns the bytes written."""
    return write_vtw(output, vtw)


def inspect(source: Path | str) -> Inspection:
    """What a `.vtw` holds: model, video, geometry, tensor sizes, bitrate equivalent (`to_json()`)."""
    return inspect_vtw(source)


def verify(source: Path | str) -> VerifyReport:
    """Whether a `.vtw` is intact: a corrupt file is `valid=False` with the reason, not an exception."""
    return verify_vtw(source)
