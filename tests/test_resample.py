"""The bicubic baseline at the model's value count (`vidtwin_cli.bench.resample`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidtwin_cli.bench.metrics import psnr
from vidtwin_cli.bench.resample import ResampleGrid, resampled_frames


@pytest.mark.parametrize(("w", "h", "n", "budget", "t"), [(640, 272, 250, 245_760, 2), (1920, 1080, 48, 60_000, 1),
                                                          (64, 64, 8, 1024, 4), (7, 5, 3, 1, 1)])  # fmt: skip
def test_grid_fits_the_budget_and_keeps_the_aspect(w, h, n, budget, t):
    grid = ResampleGrid.for_budget(w, h, n, budget, t)
    assert grid.frames == math.ceil(n / t)
    if budget >= grid.frames * 3:  # room for at least one pixel per frame
        assert grid.values <= budget
        assert grid.values > budget * 0.8 or min(grid.width, grid.height) < 8  # the largest such grid
        assert abs(grid.width / grid.height - w / h) < 0.1 * w / h + 1 / grid.height
    assert grid.width <= w and grid.height <= h


def _frames(n: int, h: int, w: int, fn) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return [np.repeat(np.clip(fn(k, y, x), 0, 255).round().astype(np.uint8)[..., None], 3, axis=2) for k in range(n)]


@pytest.mark.parametrize("t", [1, 2, 4])
def test_every_frame_comes_back_at_source_size(t):
    src = _frames(11, 30, 44, lambda k, y, x: 128 + 0 * x)
    out = list(resampled_frames(src, ResampleGrid.for_budget(44, 30, 11, 2000, t)))
    assert len(out) == 11 and all(o.shape == (30, 44, 3) and o.dtype == np.uint8 for o in out)
    assert all(np.array_equal(o, s) for o, s in zip(out, src, strict=True))  # a flat video survives exactly


def test_linear_motion_in_time_is_interpolated_between_group_centres():
    src = _frames(16, 24, 24, lambda k, y, x: 40 + 10 * k + 0 * x)  # brightness ramps linearly over time
    out = list(resampled_frames(src, ResampleGrid.for_budget(24, 24, 16, 10_000, 4)))
    inner = [psnr(s, o) for s, o in zip(src[2:-2], out[2:-2], strict=True)]  # between the first and last centre
    assert min(inner) == math.inf
    assert psnr(src[0], out[0]) < 40  # before the first centre: the nearest low frame, not extrapolated


def test_smooth_content_beats_noise_at_the_same_budget():
    grid = ResampleGrid.for_budget(48, 48, 4, 4 * 12 * 12 * 3, 1)
    smooth = _frames(4, 48, 48, lambda k, y, x: 128 + 100 * np.sin(2 * x + y))
    noise = [np.random.default_rng(k).integers(0, 256, (48, 48, 3), dtype=np.uint8) for k in range(4)]
    p_smooth = np.mean([psnr(s, o) for s, o in zip(smooth, resampled_frames(smooth, grid), strict=True)])
    p_noise = np.mean([psnr(s, o) for s, o in zip(noise, resampled_frames(noise, grid), strict=True)])
    assert p_smooth > 40 > 15 > p_noise
