"""Quality of a decoded video against its source: PSNR, SSIM, LPIPS and temporal seam/flicker errors.

Frames are RGB uint8 arrays (H, W, 3), as `video_io` yields them; every metric compares a decoded
frame with the source frame at source size. Conventions (docs/bench.md):

- PSNR on all three RGB channels, peak 255, MSE in float64. Identical frames give `math.inf`; JSON
  writes it as the string "inf" (`json_float`).
- SSIM (Wang et al. 2004) on BT.601 luma scaled to [0, 1]: 11-tap Gaussian window (σ = 1.5, cut to
  the frame side when smaller), K1 = 0.01, K2 = 0.03, data range 1, mean over the "valid" positions.
- LPIPS through the project's `models.losses.LPIPS` (inputs mapped to [-1, 1]).
- Temporal and seam errors are RMSEs of *differences*, in 8-bit units: flicker compares the change
  between consecutive frames (Δt decoded vs Δt source); the clip seam splits those frame pairs into
  pairs that straddle a clip boundary and pairs inside a clip; the tile seam compares the change
  between neighbouring pixels across internal tile edges against everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidtwin_cli.errors import RuntimeFailure
from vidtwin_cli.video.io import VideoReader
from vidtwin_cli.video.pixels import frames_to_unit

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
LUMA_BT601 = (0.299, 0.587, 0.114)


def json_float(x: float | None) -> float | str | None:
    """A float for JSON: infinities become "inf"/"-inf" (JSON has no infinity), NaN becomes null."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def json_ready(obj: object) -> object:
    """`obj` with every float made JSON-safe by `json_float`, recursively through dicts, lists and tuples."""
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def psnr_from_mse(mse: float, peak: float = PEAK) -> float:
    """10·log10(peak² / MSE); `math.inf` when MSE is 0."""
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all samples, in float64."""
    if ref.shape != test.shape:
        raise ValueError(f"frame shapes differ: {ref.shape} vs {test.shape}")
    d = ref.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(d * d))


def psnr(ref: np.ndarray, test: np.ndarray, peak: float = PEAK) -> float:
    """PSNR in dB of two uint8 frames (or any equal-shape arrays on a 0..peak scale)."""
    return psnr_from_mse(mse(ref, test), peak)


def luma(frames: np.ndarray) -> torch.Tensor:
    """RGB uint8 (..., H, W, 3) -> BT.601 luma in [0, 1], float64 (..., H, W)."""
    rgb = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float64) / PEAK
    return rgb @ torch.tensor(LUMA_BT601, dtype=torch.float64)


def _gaussian(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM of two RGB uint8 frames (H, W, 3), on luma; 1.0 for identical frames."""
    if ref.shape != test.shape:
        raise ValueError(f"frame shapes differ: {ref.shape} vs {test.shape}")
    x, y = luma(ref)[None, None], luma(test)[None, None]  # (1, 1, H, W)
    h, w = x.shape[-2:]
    size = min(SSIM_WINDOW, h - (1 - h % 2), w - (1 - w % 2))  # largest odd window that fits
    g = _gaussian(size, SSIM_SIGMA)

    def blur(a: torch.Tensor) -> torch.Tensor:  # separable Gaussian, "valid" positions only
        return F.conv2d(F.conv2d(a, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return float(s.mean())


@torch.inference_mode()
def lpips_distances(lpips: nn.Module, ref: np.ndarray, test: np.ndarray, device: torch.device | None = None) -> list[float]:
    """LPIPS of each frame pair: ref, test RGB uint8 (N, H, W, 3) -> N distances (0 for identical)."""
    device = device or torch.device("cpu")
    d = lpips(frames_to_unit(ref).to(device), frames_to_unit(test).to(device))
    return [float(v) for v in d.flatten().cpu()]


@dataclass
class _SquaredError:
    """A running sum of squared errors and its count, reported as an RMSE."""

    total: float = 0.0
    count: int = 0

    def add(self, err: np.ndarray) -> None:
        self.total += float(np.sum(err * err))
        self.count += err.size

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self.total / self.count) if self.count else None


def _seam_report(at_seam: _SquaredError, inside: _SquaredError) -> dict | None:
    if not at_seam.count:
        return None
    ratio = at_seam.rmse / inside.rmse if inside.count and inside.rmse else None
    return {"seam_rmse": at_seam.rmse, "inside_rmse": inside.rmse, "ratio": ratio}


class VideoQuality:
    """Streams (source, decoded) frame pairs and accumulates every quality metric.

    Args:
        clip_frames: frames per model clip (T); the pair (t - 1, t) with t % T == 0 is a clip seam.
        tile: model tile side in pixels when frames were tiled (`--fit tile`), else None.
        lpips: an LPIPS module (`models.losses.LPIPS`), or None to skip LPIPS.
        lpips_every: LPIPS on every n-th frame only (it is by far the slowest metric).
    """

    def __init__(
        self,
        clip_frames: int,
        tile: int | None = None,
        lpips: nn.Module | None = None,
        lpips_every: int = 1,
        lpips_batch: int = 8,
        device: torch.device | None = None,
    ) -> None:
        if clip_frames < 1 or lpips_every < 1 or lpips_batch < 1 or (tile is not None and tile < 1):
            raise ValueError("clip_frames, tile, lpips_every and lpips_batch must be >= 1")
        self.clip_frames, self.tile = clip_frames, tile
        self.lpips, self.lpips_every, self.lpips_batch, self.device = lpips, lpips_every, lpips_batch, device
        self.mse: list[float] = []  # per frame, 8-bit scale
        self.ssim: list[float] = []
        self.lpips_values: dict[int, float] = {}
        self._prev_err: np.ndarray | None = None
        self._flicker, self._clip_seam, self._clip_inside = _SquaredError(), _SquaredError(), _SquaredError()
        self._tile_seam, self._tile_inside = _SquaredError(), _SquaredError()
        self._pending: list[tuple[int, np.ndarray, np.ndarray]] = []

    @property
    def frames(self) -> int:
        return len(self.mse)

    def add(self, ref: np.ndarray, test: np.ndarray) -> None:
        """One source frame and its decoded frame, RGB uint8 (H, W, 3), in display order."""
        if ref.shape != test.shape or ref.ndim != 3 or ref.shape[2] != 3:
            raise ValueError(f"expected two RGB frames of the same size, got {ref.shape} and {test.shape}")
        index = self.frames
        err = test.astype(np.float64) - ref.astype(np.float64)
        self.mse.append(float(np.mean(err * err)))
        self.ssim.append(ssim(ref, test))
        if self.tile is not None:
            self._add_tile_seams(err)
        if self._prev_err is not None:
            d = err - self._prev_err  # (test_t - test_t-1) - (ref_t - ref_t-1)
            self._flicker.add(d)
            (self._clip_seam if index % self.clip_frames == 0 else self._clip_inside).add(d)
        self._prev_err = err
        if self.lpips is not None and index % self.lpips_every == 0:
            self._pending.append((index, ref, test))
            if len(self._pending) >= self.lpips_batch:
                self._flush_lpips()

    def _add_tile_seams(self, err: np.ndarray) -> None:
        """Error of neighbour differences across internal tile edges vs everywhere else."""
        for axis in (0, 1):
            d = np.diff(err, axis=axis)  # pair (k, k + 1) down the rows (axis 0) or along a row (axis 1)
            at_edge = (np.arange(d.shape[axis]) + 1) % self.tile == 0
            self._tile_seam.add(np.compress(at_edge, d, axis=axis))
            self._tile_inside.add(np.compress(~at_edge, d, axis=axis))

    def _flush_lpips(self) -> None:
        if not self._pending:
            return
        index, ref, test = zip(*self._pending)
        for i, v in zip(index, lpips_distances(self.lpips, np.stack(ref), np.stack(test), self.device)):
            self.lpips_values[i] = v
        self._pending.clear()

    def _summary(self, start: int, stop: int) -> dict:
        lp = [v for i, v in self.lpips_values.items() if start <= i < stop]
        return {
            "psnr": json_float(psnr_from_mse(float(np.mean(self.mse[start:stop])))),
            "ssim": float(np.mean(self.ssim[start:stop])),
            "lpips": float(np.mean(lp)) if lp else None,
        }

    def result(self) -> dict:
        """The JSON-ready report (schema in docs/bench.md)."""
        if not self.frames:
            raise ValueError("no frames were compared")
        self._flush_lpips()
        psnr = [psnr_from_mse(m) for m in self.mse]
        lp = list(self.lpips_values.values())
        clips = range(0, self.frames, self.clip_frames)
        return {
            "frames": self.frames,
            "psnr": {
                "mean": json_float(float(np.mean(psnr))),  # mean of per-frame values: "inf" if any frame is exact
                "pooled": json_float(psnr_from_mse(float(np.mean(self.mse)))),  # from the mean MSE
                "min": json_float(min(psnr)),
                "per_frame": [json_float(p) for p in psnr],
            },
            "ssim": {"mean": float(np.mean(self.ssim)), "min": min(self.ssim), "per_frame": list(self.ssim)},
            "lpips": {"mean": float(np.mean(lp)), "frames_measured": len(lp)} if lp else None,
            "flicker_rmse": self._flicker.rmse,
            "clip_seam": _seam_report(self._clip_seam, self._clip_inside),
            "tile_seam": _seam_report(self._tile_seam, self._tile_inside),
            "per_clip": [{"frames": [s, min(s + self.clip_frames, self.frames)], **self._summary(s, s + self.clip_frames)} for s in clips],
        }


def compare(src: Path | str, decoded: Iterable[np.ndarray], quality: VideoQuality) -> dict:
    """Feed (source frame, decoded frame) pairs of the video `src` into `quality`; returns its report."""
    with VideoReader(src) as source:
        try:
            for ref, out in zip(source, decoded, strict=True):
                quality.add(ref, out)
        except ValueError as e:
            raise RuntimeFailure(f"{src}: decoded frames do not line up with the source ({e})") from e
    return quality.result()
