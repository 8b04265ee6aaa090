"""The trivial codec a learned one has to beat: keep as many values as the model's latents.

The video is area-downsampled in time (a mean over each group of `time_factor` frames) and in
space (to the largest size of the source's aspect whose value count fits the budget), then brought
back to source size with linear interpolation in time and bicubic interpolation in space. No
learning and no entropy coding: the point is the value count. A learned autoencoder that does not
beat this at the same number of values has learned nothing that interpolation does not give for free.

Frames stream through: memory is three low-resolution frames plus one group of source frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

TIME_FACTORS = (1, 2, 4)  # the time/space splits `best_grid` tries


@dataclass(frozen=True)
class ResampleGrid:
    """The low-resolution grid a video is kept on: `frames` × `height` × `width` × 3 values."""

    time_factor: int
    frames: int
    height: int
    width: int

    @property
    def values(self) -> int:
        return self.frames * self.height * self.width * 3

    @classmethod
    def for_budget(cls, width: int, height: int, frame_count: int, budget: int, time_factor: int) -> ResampleGrid:
        """The largest grid of the source's aspect, at `time_factor`, holding at most `budget` values."""
        if min(width, height, frame_count, budget, time_factor) < 1:
            raise ValueError("sizes, budget and time factor must be positive")
        frames = math.ceil(frame_count / time_factor)
        scale = math.sqrt(budget / (frames * 3 * width * height))
        h, w = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
        return cls(time_factor, frames, min(h, height), min(w, width))


def _groups(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    group: list[np.ndarray] = []
    for frame in frames:
        group.append(frame)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _low(group: list[np.ndarray], grid: ResampleGrid) -> torch.Tensor:
    """A group of (H, W, 3) uint8 frames -> their mean, area-downsampled: (1, 3, h, w) float32."""
    mean = torch.from_numpy(np.stack(group)).to(torch.float32).mean(0)  # (H, W, 3)
    return F.interpolate(mean.permute(2, 0, 1)[None], size=(grid.height, grid.width), mode="area")


def _up(low: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(1, 3, h, w) float -> (height, width, 3) uint8 by bicubic interpolation."""
    up = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)
    return up[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def resampled_frames(frames: Iterable[np.ndarray], grid: ResampleGrid) -> Iterator[np.ndarray]:
    """`frames` through the grid and back, one output frame per input frame.

    Low-resolution frame k stands at the centre of its group, time (k + 1/2)·t − 1/2 in source frames;
    a source frame between two centres blends their two low-resolution frames linearly (before
    the bicubic step, with which it commutes). Frames before the first centre or after the last
    take the nearest one.
    """
    t = grid.time_factor
    groups = _groups(frames, t)
    group = next(groups, None)
    if group is None:
        return
    height, width = group[0].shape[:2]
    prev, cur = None, _low(group, grid)
    while group is not None:
        following = next(groups, None)
        nxt = _low(following, grid) if following is not None else None
        for j in range(len(group)):
            d = (j - (t - 1) / 2) / t  # offset from this group's centre, in low-resolution frames
            if d < 0 and prev is not None:
                low = cur * (1 + d) - prev * d
            elif d > 0 and nxt is not None:
                low = cur * (1 - d) + nxt * d
            else:
                low = cur
            yield _up(low, height, width)
        prev, cur, group = cur, nxt, following
