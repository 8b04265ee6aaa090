"""Training clips from real videos: listing, probing, random clips with the official stride rule.

Sample `i` of a run is a pure function of (seed, i): which video (a fresh permutation of the
videos per pass), the start frame, the scale and the crop all come from a generator seeded with
(seed, i). Step `s` of rank `r` in a world of `W` processes with batch `B` takes samples
(s·W + r)·B ... + B − 1, so resuming at step `s` only needs `s`, and DataLoader workers never
change what is drawn. Frames are decoded with the project's `VideoReader`; a video that cannot be
read is skipped with a warning (at probe time, or in a worker, where the next video stands in).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from vidtwin_cli.errors import InputError
from vidtwin_cli.interrupts import STOP_SIGNALS
from vidtwin_cli.video.io import VideoReader
from vidtwin_cli.video.pixels import to_unit
from vidtwin_cli.training.config import DataConfig

log = logging.getLogger(__name__)

SEED_EPOCH, SEED_CLIP, SEED_VAL = 11, 12, 13  # purposes of the data seeds


@dataclass(frozen=True)
class VideoEntry:
    """One usable video: its path and what clip sampling needs."""

    path: str
    frames: int
    fps: float
    width: int
    height: int

    def stride(self, sample_fps: float) -> int:
        """Official rule: every round(fps / sample_fps)-th frame, at least every frame."""
        return max(1, round(self.fps / sample_fps))


def probe_videos(paths: list[Path]) -> list[VideoEntry]:
    """Decode each video once to count its frames; unreadable ones are skipped with a warning."""
    entries = []
    for path in paths:
        try:
            with VideoReader(path) as video:
                n = sum(1 for _ in video)
                info = video.info
        except InputError as e:
            log.warning("skipping %s", e)
            continue
        entries.append(VideoEntry(str(path), n, float(info.fps), info.width, info.height))
    return entries


def read_frames(path: str, indices: list[int]) -> np.ndarray:
    """Frames at the given in-range indices (repeats allowed), (len, H, W, 3) uint8; decoding stops early."""
    wanted, out = set(indices), {}
    with VideoReader(path) as video:
        for i, frame in enumerate(video):
            if i in wanted:
                out[i] = frame
                if len(out) == len(wanted):
                    break
    if len(out) < len(wanted):
        raise InputError(f"{path}: has fewer frames than when it was probed")
    return np.stack([out[i] for i in indices])


def crop_box(height: int, width: int, tile: int, scale: float, offset: tuple[float, float]) -> tuple[int, int, int]:
    """(top, left, side) of the square source region that becomes one tile at `scale` (≤ 1 shrinks)."""
    side = min(height, width, max(1, round(tile / scale)))
    top = round(offset[0] * (height - side))
    left = round(offset[1] * (width - side))
    return top, left, side


def clip_tensor(frames: np.ndarray, box: tuple[int, int, int], tile: int) -> torch.Tensor:
    """Crop (T, H, W, 3) uint8 to `box`, antialiased resize to tile² -> (3, T, tile, tile) in [-1, 1]."""
    top, left, side = box
    x = torch.from_numpy(np.ascontiguousarray(frames[:, top : top + side, left : left + side]))
    x = x.permute(0, 3, 1, 2).float()  # (T, 3, side, side)
    if side != tile:
        x = F.interpolate(x, size=(tile, tile), mode="bilinear", antialias=True, align_corners=False)
    return to_unit(x).clamp(-1, 1).transpose(0, 1).contiguous()


class ClipDataset(Dataset):
    """Sample index -> one training clip (C, T, H, W) in [-1, 1]."""

    def __init__(self, videos: list[VideoEntry], config: DataConfig, frames: int, tile: int, seed: int) -> None:
        if not videos:
            raise InputError("no readable training videos")
        self.videos, self.config, self.frames, self.tile, self.seed = videos, config, frames, tile, seed
        self._bad: set[int] = set()
        self._cache: dict[int, np.ndarray] = {}

    def decoded_bytes(self) -> int:
        """RAM that `preload` would take (all frames as RGB uint8)."""
        return sum(v.frames * v.height * v.width * 3 for v in self.videos)

    def preload(self) -> None:
        """Decode every video into RAM once (small data sets). Do it before the DataLoader starts
        its workers: they then share the frames copy-on-write instead of decoding per clip."""
        for v, video in enumerate(self.videos):
            try:
                self._cache[v] = read_frames(video.path, list(range(video.frames)))
            except InputError as e:
                log.warning("skipping %s", e)
                self._bad.add(v)

    def _frames(self, v: int, indices: list[int]) -> np.ndarray:
        if v in self._cache:
            return self._cache[v][indices]
        return read_frames(self.videos[v].path, indices)

    def __len__(self) -> int:  # nominal: samples are drawn by index from an unbounded stream
        return len(self.videos)

    def video_of(self, index: int) -> int:
        n = len(self.videos)
        order = np.random.default_rng([self.seed, SEED_EPOCH, index // n]).permutation(n)
        return int(order[index % n])

    def indices(self, video: VideoEntry, start: int) -> list[int]:
        """Frame indices of the clip starting at `start`; past the end the last frame repeats."""
        stride = video.stride(self.config.sample_fps)
        return [min(start + k * stride, video.frames - 1) for k in range(self.frames)]

    def last_start(self, video: VideoEntry) -> int:
        return max(0, video.frames - (self.frames - 1) * video.stride(self.config.sample_fps) - 1)

    def box(self, video: VideoEntry, rng: np.random.Generator, random_crop: bool, random_scale: bool) -> tuple[int, int, int]:
        """The source region of one clip (see `crop_box`)."""
        cfg, short = self.config, min(video.height, video.width)
        if cfg.resize == "short-side":
            scale = self.tile / short
        else:
            scale = float(rng.uniform(cfg.min_scale, 1.0)) if random_scale and cfg.min_scale < 1 else 1.0
            scale = max(scale, self.tile / short)  # never a region smaller than the tile
        offset = (float(rng.uniform()), float(rng.uniform())) if random_crop else (0.5, 0.5)
        return crop_box(video.height, video.width, self.tile, scale, offset)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, SEED_CLIP, index])
        first = self.video_of(index)
        for k in range(len(self.videos)):
            v = (first + k) % len(self.videos)
            if v in self._bad:
                continue
            video = self.videos[v]
            indices = self.indices(video, int(rng.integers(0, self.last_start(video) + 1)))
            box = self.box(video, rng, random_crop=self.config.crop == "random", random_scale=True)
            try:
                return clip_tensor(self._frames(v, indices), box, self.tile)
            except InputError as e:
                log.warning("skipping %s", e)
                self._bad.add(v)
        raise InputError("no training video could be read")


class StepSampler(Sampler[int]):
    """The sample indices of one rank from `start_step` on, forever (see the module docstring)."""

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.batch_size, self.start_step, self.rank, self.world_size = batch_size, start_step, rank, world_size

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1


def _worker_init(_: int) -> None:
    """A stop is the main process's to handle: it saves a checkpoint, then shuts the workers down. Ctrl-C
    reaches the whole process group, and so does SIGTERM from Slurm, systemd or `kill -- -PGID`; a worker
    that died of it first made the main process fail with 'DataLoader worker ... killed', unsaved."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def clip_loader(dataset: ClipDataset, batch_size: int, start_step: int, rank: int, world_size: int,
                num_workers: int, pin_memory: bool = False) -> DataLoader:
    """Batches (B, C, T, H, W) for steps start_step, start_step + 1, ... of one rank."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StepSampler(batch_size, start_step, rank, world_size),
        num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
        persistent_workers=num_workers > 0,
        prefetch_factor=2 if num_workers else None,
        pin_memory=pin_memory,
    )


def validation_clips(videos: list[VideoEntry], config: DataConfig, frames: int, tile: int, seed: int) -> torch.Tensor:
    """`config.val_clips` evenly spaced clips of every video -> (N, C, T, H, W); centre crop
    ("native": a fixed pseudo-random crop at scale 1). Decodes each video once."""
    if not videos:
        return torch.empty(0, 3, frames, tile, tile)
    dataset = ClipDataset(videos, config, frames, tile, seed)
    clips = []
    for v, video in enumerate(videos):
        last = dataset.last_start(video)
        starts = sorted({round(last * k / max(1, config.val_clips - 1)) for k in range(config.val_clips)})
        plans = [dataset.indices(video, start) for start in starts]
        boxes = [dataset.box(video, np.random.default_rng([seed, SEED_VAL, v, k]), config.resize == "native", False)
                 for k in range(len(starts))]  # fmt: skip
        needed = sorted({i for plan in plans for i in plan})
        try:
            decoded = read_frames(video.path, needed)
        except InputError as e:
            log.warning("skipping validation video: %s", e)
            continue
        row = {i: n for n, i in enumerate(needed)}
        clips += [clip_tensor(decoded[[row[i] for i in plan]], box, tile) for plan, box in zip(plans, boxes)]
    return torch.stack(clips) if clips else torch.empty(0, 3, frames, tile, tile)


def describe(videos: list[VideoEntry], sample_fps: float) -> str:
    """One line: how much data there is."""
    frames = sum(v.frames for v in videos)
    seconds = sum(v.frames / v.fps for v in videos)
    strides = sorted({v.stride(sample_fps) for v in videos})
    return f"{len(videos)} videos, {frames} frames, {seconds / 60:.1f} min, stride {'/'.join(map(str, strides))}"

