"""synth-motion: a built-in labelled video set and a motion-direction classifier that needs no learning.

Each video shows one textured square moving in a straight line over a static, dim, textured
background; the class is the direction (right, left, down, up). Videos are written as real
files, one folder per class plus `labels.csv`, so `vidtwin train dit` reads them like any
other collection. `motion_direction` recovers the class from frames by tracking the
brightness-weighted centroid of the object (bright) against the background (dim); it is how
`vidtwin datasets check-motion` scores generated videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidtwin_cli.callbacks import Progress
from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.media import LABELS_FILE, write_labels
from vidtwin_cli.video.info import VideoInfo
from vidtwin_cli.video.io import VideoReader, VideoWriter

CLASSES = ("right", "left", "down", "up")  # class id = position
VELOCITY = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}  # (dx, dy) in image axes
VIDEO_SUFFIX = ".mp4"
BACKGROUND_LEVEL = (25, 75)  # background base brightness range (uint8)
BACKGROUND_TEXTURE = 10  # ± amplitude of the static background texture
OBJECT_LEVEL = (160, 255)  # brightness range of the object's two checker colours
SPEED = (0.3, 0.5)  # object displacement over the clip, as a fraction of the frame side
OBJECT_SIDE = (0.3, 0.4)  # object side, as a fraction of the frame side
CHECKER_CELLS = 3  # checker cells along the object's side
THRESHOLD = 0.5  # object pixels: brighter than median + THRESHOLD·(max − median) of the frame


@dataclass(frozen=True)
class SynthSettings:
    """Geometry and timing of every synth-motion video."""

    size: int = 64  # frame width = height in pixels
    frames: int = 8  # frames per video
    fps: int = 8

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 1024:
            raise UsageError(f"--size must be in 16..1024, got {self.size}")
        if not 2 <= self.frames <= 1000:
            raise UsageError(f"--frames must be in 2..1000, got {self.frames}")
        if not 1 <= self.fps <= 240:
            raise UsageError(f"--fps must be in 1..240, got {self.fps}")


def render(label: int, settings: SynthSettings, rng: np.random.Generator) -> np.ndarray:
    """One clip of class `label`: (T, H, W, 3) uint8 RGB."""
    n, t = settings.size, settings.frames
    low = rng.uniform(*BACKGROUND_LEVEL, size=3)
    coarse = rng.uniform(-BACKGROUND_TEXTURE, BACKGROUND_TEXTURE, size=(n // 8 + 1, n // 8 + 1, 3))
    texture = np.kron(coarse, np.ones((8, 8, 1)))[:n, :n]  # blocky, static
    background = np.clip(low + texture, 0, 255)

    side = max(4, round(rng.uniform(*OBJECT_SIDE) * n))
    colours = rng.uniform(*OBJECT_LEVEL, size=(2, 3))
    cell = max(1, side // CHECKER_CELLS)
    yy, xx = np.mgrid[:side, :side]
    checker = colours[((yy // cell + xx // cell) % 2)]  # (side, side, 3)

    dx, dy = VELOCITY[CLASSES[label]]
    travel = rng.uniform(*SPEED) * n
    step = travel / (t - 1)
    free = n - side  # positions that keep the object fully inside the frame
    along = rng.uniform(0, free - travel)
    across = rng.uniform(0, free)
    start_x = (along if dx > 0 else free - along) if dx else across
    start_y = (along if dy > 0 else free - along) if dy else across

    video = np.empty((t, n, n, 3), dtype=np.uint8)
    for k in range(t):
        frame = background.copy()
        x, y = round(start_x + dx * step * k), round(start_y + dy * step * k)
        frame[y : y + side, x : x + side] = checker
        video[k] = np.round(frame).astype(np.uint8)
    return video


def motion_direction(frames: np.ndarray) -> int:
    """Class id of the dominant motion in frames (T, H, W, 3) uint8, by centroid tracking.

    Per frame, pixels brighter than median + THRESHOLD·(max − median) are the object; their
    brightness-weighted centroid is fitted with a line over time, and the larger velocity
    component (with its sign) names the direction.
    """
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise InputError(f"need at least 2 frames (T, H, W, 3), got shape {frames.shape}")
    lum = frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (T, H, W)
    t, h, w = lum.shape
    ys, xs = np.mgrid[:h, :w]
    centres = []
    for frame in lum:
        med, top = np.median(frame), frame.max()
        weight = np.clip(frame - (med + THRESHOLD * (top - med)), 0, None)
        total = weight.sum()
        centres.append(((weight * xs).sum() / total, (weight * ys).sum() / total) if total > 0 else ((w - 1) / 2, (h - 1) / 2))
    vx, vy = np.polyfit(np.arange(t), np.array(centres), 1)[0]  # slopes of x(t), y(t)
    if abs(vx) >= abs(vy):
        return CLASSES.index("right" if vx > 0 else "left")
    return CLASSES.index("down" if vy > 0 else "up")


def classify_video(path: Path) -> int:
    """`motion_direction` of a video file (all its frames)."""
    with VideoReader(path) as video:
        return motion_direction(np.stack(list(video)))


def write_dataset(
    out: Path,
    per_class: int,
    seed: int = 0,
    settings: SynthSettings = SynthSettings(),
    progress: Progress | None = None,
) -> list[tuple[str, str]]:
    """Write `per_class` videos of every class under out/<class>/ and out/labels.csv; returns the rows.

    Video k of class c is a pure function of (seed, c, k).
    """
    if per_class < 1:
        raise UsageError(f"--per-class must be >= 1, got {per_class}")
    out.mkdir(parents=True, exist_ok=True)
    fps = Fraction(settings.fps)
    info = VideoInfo(settings.size, settings.size, fps, 1 / fps, settings.frames, settings.frames / settings.fps)
    rows = []
    for label, name in enumerate(CLASSES):
        (out / name).mkdir(exist_ok=True)
        for k in range(per_class):
            rng = np.random.default_rng([seed, label, k])
            rel = f"{name}/{name}_{k:04d}{VIDEO_SUFFIX}"
            with VideoWriter(out / rel, info, settings.size, settings.size) as writer:
                for frame in render(label, settings, rng):
                    writer.write(frame)
            rows.append((rel, name))
            if progress is not None:
                progress(1)
    write_labels(out / LABELS_FILE, rows)
    return rows
