"""Clips of video frames to model tiles and back, for the three fit modes of a `Geometry`.

Model input is float32 in [-1, 1], channel-first per tile: (n_tiles, 3, T, tile, tile); pixels map
to that range as `video/pixels.py` says.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidtwin_cli.video.info import Geometry
from vidtwin_cli.video.pixels import frames_to_unit, unit_to_frames


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of (N, C, H, W), as torchvision's Resize(antialias=True)."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


def _short_side_crop(x: torch.Tensor, tile: int) -> torch.Tensor:
    """Short side to `tile`, then the centre tile×tile: the official scripts' Resize(tile) + CenterCrop(tile)."""
    h, w = x.shape[-2:]
    # Resize(int) keeps the aspect ratio and truncates the long side, as torchvision does.
    height, width = (tile, int(tile * w / h)) if h <= w else (int(tile * h / w), tile)
    x = _resize(x, height, width)
    top, left = int(round((height - tile) / 2.0)), int(round((width - tile) / 2.0))
    return x[..., top:top + tile, left:left + tile]


def resize_clip(clip: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames scaled to width×height (antialiased bilinear; the aspect ratio is not kept)."""
    if clip.shape[1:3] == (height, width):
        return clip
    return unit_to_frames(_resize(frames_to_unit(clip), height, width))


def frames_to_tiles(clip: np.ndarray, geom: Geometry) -> torch.Tensor:
    """A clip of frames as model input tiles.

    Args:
        clip: (T, H, W, 3) uint8 RGB with H×W = geom.height×geom.width.
    Returns:
        (geom.tiles_per_clip, 3, T, tile, tile) float32 in [-1, 1]; tile mode orders tiles row-major
        and pads the right/bottom edge by repeating the last column/row.
    """
    if clip.shape[1:3] != (geom.height, geom.width):
        raise ValueError(f"clip frames are {clip.shape[2]}x{clip.shape[1]}, "
                         f"geometry expects {geom.width}x{geom.height}")
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"expected a (T, H, W, 3) uint8 clip, got {clip.shape} {clip.dtype}")
    x = frames_to_unit(clip)  # (T, 3, H, W)
    t, tile = x.shape[0], geom.tile
    if geom.fit == "resize":
        x = _resize(x, tile, tile)
    elif geom.fit == "crop":
        x = _short_side_crop(x, tile)
    else:
        x = F.pad(x, (0, geom.pad_right, 0, geom.pad_bottom), mode="replicate")  # (T, 3, rows·tile, cols·tile)
        x = x.reshape(t, 3, geom.rows, tile, geom.cols, tile)
        x = x.permute(2, 4, 1, 0, 3, 5)  # (rows, cols, 3, T, tile, tile)
        return x.reshape(geom.tiles_per_clip, 3, t, tile, tile).contiguous()
    return x.permute(1, 0, 2, 3).unsqueeze(0).contiguous()  # (1, 3, T, tile, tile)


def tiles_to_frames(tiles: torch.Tensor, geom: Geometry) -> np.ndarray:
    """Model output tiles back to frames: the inverse of `frames_to_tiles`.

    Args:
        tiles: (geom.tiles_per_clip, 3, T, tile, tile) float in [-1, 1] (any device/dtype).
    Returns:
        (T, H_out, W_out, 3) uint8 with (W_out, H_out) = geom.output_size: tile mode trims the
        padding, resize scales back to W×H, crop stays tile×tile.
    """
    n, tile = geom.tiles_per_clip, geom.tile
    if tiles.ndim != 5 or tiles.shape[0] != n or tiles.shape[1] != 3 or tiles.shape[-2:] != (tile, tile):
        raise ValueError(f"expected ({n}, 3, T, {tile}, {tile}) tiles, got {tuple(tiles.shape)}")
    x = tiles.detach().float().cpu()
    t = x.shape[2]
    if geom.fit == "tile":
        x = x.reshape(geom.rows, geom.cols, 3, t, tile, tile)
        x = x.permute(3, 2, 0, 4, 1, 5)  # (T, 3, rows, tile, cols, tile)
        x = x.reshape(t, 3, geom.rows * tile, geom.cols * tile)[..., :geom.height, :geom.width]
    else:
        x = x[0].permute(1, 0, 2, 3)  # (T, 3, tile, tile)
        if geom.fit == "resize":
            x = _resize(x, geom.height, geom.width)
    return unit_to_frames(x)
