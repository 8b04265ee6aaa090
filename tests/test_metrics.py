"""Quality metrics on inputs whose answers are known by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.losses import LPIPS
from vidtwin_cli.bench.metrics import VideoQuality, json_float, lpips_distances, psnr, ssim


def frames(n: int = 1, h: int = 24, w: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(20, 236, (n, h, w, 3), dtype=np.uint8)


def test_psnr_of_identical_frames_is_inf_and_written_as_a_string():
    a = frames()[0]
    assert psnr(a, a) == math.inf
    q = VideoQuality(clip_frames=2)
    q.add(a, a)
    report = q.result()
    assert report["psnr"]["mean"] == report["psnr"]["pooled"] == report["psnr"]["per_frame"][0] == "inf"
    json.dumps(report, allow_nan=False)  # strict JSON: no Infinity/NaN tokens
    assert json_float(-math.inf) == "-inf" and json_float(math.nan) is None


def test_psnr_by_hand():
    a = frames()[0]
    b = a + 1  # every sample off by one: MSE = 1
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-12)  # 48.1308 dB
    c = a.copy()
    c[::2] += 2  # half the rows off by two: MSE = 2
    assert psnr(a, c) == pytest.approx(10 * math.log10(255**2 / 2), abs=1e-12)


def test_psnr_mean_and_pooled_differ_as_documented():
    a = frames(2)
    b = a.copy()
    b[1] += 3  # frame 0 exact, frame 1 MSE 9
    q = VideoQuality(clip_frames=8)
    for x, y in zip(a, b):
        q.add(x, y)
    r = q.result()
    assert r["psnr"]["mean"] == "inf"  # a mean over per-frame values with one exact frame
    assert r["psnr"]["pooled"] == pytest.approx(10 * math.log10(255**2 / 4.5))
    assert r["psnr"]["min"] == pytest.approx(10 * math.log10(255**2 / 9))


def test_ssim_of_identical_frames_is_one():
    a = frames()[0]
    assert ssim(a, a) == 1.0
    assert ssim(a, np.clip(a.astype(int) + np.random.default_rng(1).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)) < 1


def test_ssim_of_flat_frames_by_hand():
    """Two flat grey frames: no variance, so SSIM is the luminance term (2ab + C1) / (a² + b² + C1)."""
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 140, np.uint8)
    x, y, c1 = 100 / 255, 140 / 255, 0.01**2
    assert ssim(a, b) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), abs=1e-12)


def test_ssim_window_shrinks_for_small_frames():
    a = frames(h=5, w=8)[0]
    assert ssim(a, a) == 1.0
    assert math.isfinite(ssim(a, 255 - a)) and ssim(a, 255 - a) < 1  # defined below the 11-px window


def test_lpips_of_identical_frames_is_zero():
    lpips = LPIPS("alex")  # random weights suffice: identical features give exactly zero
    a, b = frames(2, 64, 64), frames(2, 64, 64, seed=3)
    assert lpips_distances(lpips, a, a) == [0.0, 0.0]
    assert all(d != 0 for d in lpips_distances(lpips, a, b))
    q = VideoQuality(clip_frames=2, lpips=lpips, lpips_every=2)
    for x in a:
        q.add(x, x)
    assert q.result()["lpips"] == {"mean": 0.0, "frames_measured": 1}


def test_flicker_is_the_error_of_frame_differences():
    ref = np.full((6, 8, 8, 3), 128, np.uint8)
    test = ref.copy()
    test[1::2] += 5  # decoded frames alternate +0/+5 around a still source: every Δ is off by 5
    q = VideoQuality(clip_frames=100)
    for x, y in zip(ref, test):
        q.add(x, y)
    r = q.result()
    assert r["flicker_rmse"] == pytest.approx(5.0)
    assert r["clip_seam"] is None  # one clip: no boundary


def test_clip_seam_separates_boundary_pairs_from_inside_pairs():
    ref = np.stack([np.full((8, 8, 3), 60 + 10 * i, np.uint8) for i in range(9)])  # a moving source
    test = ref.copy()
    for k in range(3):
        test[3 * k : 3 * k + 3] += 4 * k  # each clip of 3 frames carries its own constant offset
    q = VideoQuality(clip_frames=3)
    for x, y in zip(ref, test):
        q.add(x, y)
    seam = q.result()["clip_seam"]
    assert seam["seam_rmse"] == pytest.approx(4.0)  # the offset jumps by 4 at frames 3 and 6
    assert seam["inside_rmse"] == 0.0
    assert seam["ratio"] is None  # undefined when the inside error is zero
    assert q.result()["flicker_rmse"] == pytest.approx(math.sqrt(2 * 16 / 8))


def test_tile_seam_separates_tile_edges_from_tile_insides():
    ref = frames(1, 4, 8)[0]
    test = ref.copy()
    test[:, :4] += 6  # the left tile of a 1×2 grid of 4-px tiles is offset by 6
    q = VideoQuality(clip_frames=1, tile=4)
    q.add(ref, test)
    seam = q.result()["tile_seam"]
    assert seam["seam_rmse"] == pytest.approx(6.0)  # only the column pair (3, 4) crosses the edge
    assert seam["inside_rmse"] == 0.0
    assert q.result()["clip_seam"] is None


def test_report_per_clip_and_bad_input():
    a, b = frames(5), frames(5, seed=9)
    q = VideoQuality(clip_frames=2)
    for x, y in zip(a, b):
        q.add(x, y)
    r = q.result()
    assert [c["frames"] for c in r["per_clip"]] == [[0, 2], [2, 4], [4, 5]]
    assert len(r["psnr"]["per_frame"]) == len(r["ssim"]["per_frame"]) == r["frames"] == 5
    with pytest.raises(ValueError, match="same size"):
        q.add(a[0], a[0][:-1])
    with pytest.raises(ValueError, match="no frames"):
        VideoQuality(clip_frames=2).result()
    with pytest.raises(ValueError):
        VideoQuality(clip_frames=0)
