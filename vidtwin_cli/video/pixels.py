"""The one mapping between 8-bit pixels and the model's range: x = u / 127.5 - 1, u in [0, 255].

uint8 -> float -> uint8 is exact: the way back rounds to nearest, then clamps to [0, 255].
"""

from __future__ import annotations

import numpy as np
import torch

HALF = 127.5  # uint8 midpoint: [0, 255] <-> [-1, 1]


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 255] (any float or integer tensor) -> float in [-1, 1]."""
    return pixels.float() / HALF - 1


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Model-range values -> uint8, rounded to nearest and clamped (same shape, same device)."""
    return ((x.float() + 1) * HALF).round_().clamp_(0, 255).to(torch.uint8)


def frames_to_unit(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> (N, 3, H, W) float32 in [-1, 1]."""
    return to_unit(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))


def unit_to_frames(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8 RGB frames on the CPU."""
    return to_pixels(x).permute(0, 2, 3, 1).contiguous().cpu().numpy()
