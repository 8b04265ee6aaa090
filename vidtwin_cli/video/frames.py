"""Frames already in memory as a video source: the same face `VideoReader` shows to the encoder."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import torch

from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.video.info import VideoInfo


def _rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: 30000/1001 stays itself, 29.97 becomes 2997/100."""
    rate = fps if isinstance(fps, (int, Fraction)) else Fraction(str(fps))
    if rate <= 0:
        raise UsageError(f"fps must be positive, got {fps}")
    return Fraction(rate)


class FrameArray:
    """(T, H, W, 3) uint8 RGB frames (a numpy array or a CPU tensor) at a given frame rate.

    Like `VideoReader` it has `width`, `height`, `estimated_frames`, iterates frames and knows its
    `info`; unlike a file, all of it is known up front.
    """

    name = "<frames>"
    audio_streams = 0

    def __init__(self, frames: np.ndarray | torch.Tensor, fps: float | Fraction) -> None:
        array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or not array.shape[0]:
            raise InputError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {array.shape} {array.dtype}")
        self.frames = array
        count, self.height, self.width = array.shape[:3]
        self.estimated_frames = count
        rate = _rate(fps)
        self.info = VideoInfo(self.width, self.height, rate, 1 / rate, count, float(count / rate))

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.frames)

    def __enter__(self) -> FrameArray:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
