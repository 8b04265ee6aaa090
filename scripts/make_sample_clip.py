"""Render the bundled sample clip (vidtwin_cli/data/sample.mp4): our own procedural footage.

A drifting sky gradient, rolling hills with texture, and two objects moving in different
directions: smooth structure plus distinct motion, 3 s at 25 fps, 176×120 (not a multiple of
the small model's 64-px tile, so the tiling and edge padding are exercised).

    python scripts/make_sample_clip.py [OUT]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 176, 120, 25, 3


def render(t: float) -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    sky = np.stack([90 + 60 * y / HEIGHT, 140 + 50 * y / HEIGHT, 230 - 30 * y / HEIGHT + 10 * np.sin(x / 30 + t)], -1)
    hill = HEIGHT * (0.62 + 0.08 * np.sin(x / 23.0 + 0.4 * t) + 0.04 * np.sin(x / 9.0))
    grass = np.stack([60 + 25 * np.sin(x / 3.1 + y / 5.3), 130 + 30 * np.sin(x / 7.7 - y / 2.9), 50 + 0 * x], -1)
    frame = np.where((y > hill)[..., None], grass, sky)
    for cx, cy, r, colour in (
        (20 + 45 * t, 40 + 6 * np.sin(3 * t), 13, (235, 200, 40)),  # sun-like disc moving right
        (150 - 30 * t, 85 + 4 * np.cos(5 * t), 9, (200, 40, 50)),  # ball rolling left
    ):
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        alpha = np.clip(r + 0.5 - d, 0, 1)[..., None]
        shade = 0.75 + 0.25 * np.clip((cy - y) / r, -1, 1)[..., None]
        frame = frame * (1 - alpha) + alpha * np.array(colour, np.float32) * shade
    return np.clip(frame, 0, 255).astype(np.uint8)


def main(out: Path) -> None:
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "slow"}
        for i in range(FPS * SECONDS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(render(i / FPS), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "vidtwin_cli/data/sample.mp4")
