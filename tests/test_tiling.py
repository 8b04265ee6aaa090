"""Frames <-> model tiles for the three fit modes: shapes, value range, and the inverses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtwin_cli.video.tiling import frames_to_tiles, tiles_to_frames
from vidtwin_cli.video.info import Geometry

TILE = 32


def random_clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def smooth_clip(t: int, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = [np.stack([128 + 90 * np.sin(x / 17 + i), 128 + 90 * np.cos(y / 13), 60 + 0.5 * (x + y)], -1)
              for i in range(t)]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("width, height", [(45, 37), (32, 32), (1, 1), (70, 33), (64, 96), (31, 65)])
def test_tile_mode_is_an_exact_inverse(width, height):
    geom = Geometry.plan(width, height, TILE, "tile")
    clip = random_clip(3, height, width)
    tiles = frames_to_tiles(clip, geom)
    assert tiles.shape == (geom.rows * geom.cols, 3, 3, TILE, TILE) and tiles.dtype == torch.float32
    assert tiles.min() >= -1 and tiles.max() <= 1
    np.testing.assert_array_equal(tiles_to_frames(tiles, geom), clip)


def test_tiles_are_row_major_and_the_edge_is_replicated():
    geom = Geometry.plan(45, 37, TILE, "tile")  # 2×2 grid, pad right 19, bottom 27
    clip = random_clip(2, 37, 45, seed=1)
    tiles = frames_to_tiles(clip, geom)
    as_uint8 = ((tiles + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()  # (n, T, tile, tile, 3)
    np.testing.assert_array_equal(as_uint8[1][:, :37, :13], clip[:, :32, 32:45])  # top-right tile
    np.testing.assert_array_equal(as_uint8[2][:, :5, :32], clip[:, 32:37, :32])  # bottom-left tile
    bottom_right = as_uint8[3]
    assert (bottom_right[:, :5, 13:] == bottom_right[:, :5, 12:13]).all()  # last column repeated to the right
    assert (bottom_right[:, 5:] == bottom_right[:, 4:5]).all()  # last row repeated downwards


def test_every_uint8_value_survives_exactly():
    clip = np.arange(256, dtype=np.uint8).repeat(3).reshape(1, 16, 16, 3)
    geom = Geometry.plan(16, 16, 16, "tile")
    tiles = frames_to_tiles(clip, geom)
    np.testing.assert_array_equal(tiles_to_frames(tiles, geom), clip)
    assert tiles[0, 0, 0, 0, 0] == -1 and tiles[0, 0, 0, -1, -1] == 1


def test_output_rounds_and_clamps():
    geom = Geometry.plan(2, 1, 2, "tile")
    tiles = torch.full((1, 3, 1, 2, 2), 0.0)
    tiles[0, :, 0, 0, 0], tiles[0, :, 0, 0, 1] = 5.0, -1 + 0.6 / 127.5  # beyond range; 0.6 of a level above 0
    frames = tiles_to_frames(tiles, geom)
    assert frames.shape == (1, 1, 2, 3) and frames.dtype == np.uint8
    assert frames[0, 0, 0].tolist() == [255] * 3 and frames[0, 0, 1].tolist() == [1] * 3
    assert tiles_to_frames(torch.full((1, 3, 1, 2, 2), -3.0, dtype=torch.bfloat16), geom).max() == 0


@pytest.mark.parametrize("width, height", [(45, 37), (640, 272), (20, 90)])
def test_resize_mode_scales_to_one_tile_and_back(width, height):
    geom = Geometry.plan(width, height, TILE, "resize")
    clip = smooth_clip(2, height, width)
    tiles = frames_to_tiles(clip, geom)
    assert tiles.shape == (1, 3, 2, TILE, TILE)
    back = tiles_to_frames(tiles, geom)
    assert back.shape == clip.shape
    flat = np.full((2, height, width, 3), 77, np.uint8)  # a constant survives any resampling exactly
    np.testing.assert_array_equal(tiles_to_frames(frames_to_tiles(flat, geom), geom), flat)


def test_resize_mode_identity_size_is_exact():
    geom = Geometry.plan(TILE, TILE, TILE, "resize")
    clip = random_clip(2, TILE, TILE)
    np.testing.assert_array_equal(tiles_to_frames(frames_to_tiles(clip, geom), geom), clip)


def test_crop_mode_takes_the_centre_of_the_short_side_scaled_frame():
    geom = Geometry.plan(48, TILE, TILE, "crop")  # short side already the tile: a pure centre crop
    clip = random_clip(2, TILE, 48)
    out = tiles_to_frames(frames_to_tiles(clip, geom), geom)
    assert geom.output_size == (TILE, TILE) and out.shape == (2, TILE, TILE, 3)
    np.testing.assert_array_equal(out, clip[:, :, 8:40])
    tall = Geometry.plan(33, 65, TILE, "crop")  # odd sizes: short side 33 -> 32, long 65 -> 63, rows 16..47
    clip = np.zeros((1, 65, 33, 3), np.uint8)
    clip[:, 32] = 255  # one bright row in the middle stays in the middle
    out = tiles_to_frames(frames_to_tiles(clip, tall), tall)
    assert out.shape == (1, TILE, TILE, 3) and abs(int(out[0, :, 16, 0].argmax()) - 15.5) <= 1


def test_inputs_are_checked():
    geom = Geometry.plan(40, 30, TILE, "tile")
    with pytest.raises(ValueError, match="geometry expects 40x30"):
        frames_to_tiles(random_clip(1, 31, 40), geom)
    with pytest.raises(ValueError, match="uint8"):
        frames_to_tiles(random_clip(1, 30, 40).astype(np.float32), geom)
    with pytest.raises(ValueError, match="tiles"):
        tiles_to_frames(torch.zeros(3, 3, 1, TILE, TILE), geom)
