"""Clips of video frames to model tiles and back, for the three fit modes of a `Geometry`.

Model input is float32 in [-1, 1], channel-first per tile: (n_tiles, 3, T, tile, tile); pixels map
to that range as `video/pixels.py` says.

Decoding goes back one row of tiles at a time and yields one frame at a time (`clip_frames`), so its
memory is bounded by the output, never by a float copy of a whole clip at full size: tile mode holds
one clip of uint8 frames (each frame needs every row of tiles), resize mode one uint8 frame and a band
of rows in float (a `.vtw` that claims a huge frame from one small tile costs one frame, not a clip).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vidtwin_cli.video.info import Geometry
from vidtwin_cli.video.pixels import frames_to_unit, to_pixels

BAND_VALUES = 1 << 22  # float values per band of a resized frame (16 MiB): bounds resize memory at any size


def _to_unit(clip: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [-1, 1], after checking it is a clip of frames."""
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"expected a (T, H, W, 3) uint8 clip, got {clip.shape} {clip.dtype}")
    return frames_to_unit(clip)


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
    return _uint8_last(_resize(_to_unit(clip), height, width))


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
    x = _to_unit(clip)  # (T, 3, H, W)
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


def _uint8_last(x: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8 (`pixels.to_pixels`), on the CPU."""
    return to_pixels(x).movedim(-3, -1).contiguous().cpu().numpy()


def _resize_weights(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in): the antialiased bilinear resize along one axis as a matrix (`_resize` of an
    identity image along that axis, so both agree), to resize a band of rows at a time."""
    eye = torch.eye(size_in).reshape(1, 1, size_in, size_in)
    return F.interpolate(eye, size=(size_out, size_in), mode="bilinear", antialias=True, align_corners=False)[0, 0]


def _resized_frame(x: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(3, h, w) float in [-1, 1] -> (height, width, 3) uint8, computed a band of rows at a time."""
    if x.shape[-2:] == (height, width):
        return _uint8_last(x)
    rows, cols = _resize_weights(x.shape[-2], height), _resize_weights(x.shape[-1], width)
    wide = x.float() @ cols.T  # (3, h, width)
    frame = np.empty((height, width, 3), np.uint8)
    band = max(1, BAND_VALUES // (3 * width))
    for top in range(0, height, band):
        frame[top : top + band] = _uint8_last(rows[top : top + band] @ wide)  # (3, band, width)
    return frame


def clip_frames(tile_rows: Iterable[torch.Tensor], geom: Geometry) -> Iterator[np.ndarray]:
    """Model output of one clip, given one row of tiles at a time, as frames, one at a time.

    Args:
        tile_rows: geom.rows tensors of (geom.cols, 3, T, tile, tile), float in [-1, 1] (any
            device/dtype), top row first; a generator, so that each row is decoded only when needed.
    Yields:
        T frames of (H_out, W_out, 3) uint8 with (W_out, H_out) = geom.output_size: tile mode trims
        the padding, resize scales back to W×H, crop stays tile×tile. A frame may be a view into a
        buffer reused for the clip: copy it to keep it past the clip.
    """
    tile, width, height = geom.tile, geom.width, geom.height
    frames: np.ndarray | None = None
    count = 0
    for r, row in enumerate(tile_rows):
        if r >= geom.rows or row.ndim != 5 or row.shape[0] != geom.cols or row.shape[1] != 3 or \
                row.shape[-2:] != (tile, tile):  # fmt: skip
            raise ValueError(f"expected {geom.rows} rows of ({geom.cols}, 3, T, {tile}, {tile}) tiles, "
                             f"got {tuple(row.shape)} as row {r}")
        x = row.detach()
        if geom.fit != "tile":
            for t in range(x.shape[2]):
                frame = x[0, :, t]  # (3, tile, tile)
                yield _resized_frame(frame, height, width) if geom.fit == "resize" else _uint8_last(frame)
            return
        t = x.shape[2]
        if frames is None:
            frames = np.empty((t, height, width, 3), np.uint8)
        keep = min(tile, height - r * tile)
        band = x.permute(2, 1, 3, 0, 4).reshape(t, 3, tile, geom.cols * tile)  # (T, 3, tile, cols·tile)
        frames[:, r * tile : r * tile + keep] = _uint8_last(band[:, :, :keep, :width])
        count += 1
    if frames is None or count != geom.rows:
        raise ValueError(f"expected {geom.rows} rows of tiles, got {count}")
    yield from frames


def tile_rows(tiles: torch.Tensor, geom: Geometry) -> Iterator[torch.Tensor]:
    """(tiles_per_clip, ...) tiles, row-major, as geom.rows rows of geom.cols tiles."""
    n = geom.tiles_per_clip
    if tiles.ndim != 5 or tiles.shape[0] != n:
        raise ValueError(f"expected ({n}, 3, T, {geom.tile}, {geom.tile}) tiles, got {tuple(tiles.shape)}")
    return iter(tiles.split(geom.cols))


def tiles_to_frames(tiles: torch.Tensor, geom: Geometry) -> np.ndarray:
    """Model output tiles of one clip back to frames, all at once: the inverse of `frames_to_tiles`.

    Args:
        tiles: (geom.tiles_per_clip, 3, T, tile, tile) float in [-1, 1] (any device/dtype).
    Returns:
        (T, H_out, W_out, 3) uint8 (see `clip_frames`, which streams the same frames).
    """
    return np.stack(list(clip_frames(tile_rows(tiles, geom), geom)))
