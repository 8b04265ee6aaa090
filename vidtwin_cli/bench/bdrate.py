"""Bjøntegaard delta rate: the average bitrate difference of two rate–distortion curves at equal quality.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33 (2001): fit
log(rate) as a cubic in quality for each curve, integrate both over the quality range they share,
and report exp(mean difference) − 1 as a percentage (negative: the test curve needs fewer bits).
"""

from __future__ import annotations

import math

import numpy as np

MIN_POINTS = 4  # a cubic needs four


def bd_rate(reference: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """BD-rate in percent of `test` against `reference`, each a list of (bytes or bitrate, quality) with
    quality higher-is-better; None when a curve has too few distinct points or the quality ranges do not overlap.
    """
    curves = []
    for points in (reference, test):
        good = sorted({(q, math.log(r)) for r, q in points if r > 0 and math.isfinite(q)})
        if len({q for q, _ in good}) < MIN_POINTS:
            return None
        curves.append(np.array(good))
    low = max(c[:, 0].min() for c in curves)
    high = min(c[:, 0].max() for c in curves)
    if not high > low:
        return None
    integrals = []
    for c in curves:
        poly = np.polyint(np.polyfit(c[:, 0], c[:, 1], 3))
        integrals.append((np.polyval(poly, high) - np.polyval(poly, low)) / (high - low))
    return float((math.exp(integrals[1] - integrals[0]) - 1) * 100)


def rd_bd_rates(rd: dict[str, list[dict]], reference: str) -> dict[str, dict[str, float | None]]:
    """BD-rate (PSNR and LPIPS) of every other curve of a `bench --rd` result against the curve `reference`."""
    if reference not in rd:
        return {}
    out = {}
    for name, points in rd.items():
        if name == reference:
            continue
        out[name] = {
            "psnr": bd_rate(*([(p["bytes"], p["psnr"]) for p in c if p["psnr"] is not None] for c in (rd[reference], points))),
            "lpips": bd_rate(*([(p["bytes"], -p["lpips"]) for p in c if p["lpips"] is not None] for c in (rd[reference], points))),
        }  # fmt: skip
    return out
