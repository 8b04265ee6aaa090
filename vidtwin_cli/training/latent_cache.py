"""`train dit`'s data: labelled videos encoded once by the autoencoder into a cache of `.vtw` files.

The cache holds one `.vtw` per video, written by the codec's own `encode_video` (posterior means,
float32), named by a hash of the video's path, size and modification time, the AE's weights and
the fit mode; a file that is present and was made by the same weights is reused. Training
samples are the tiles of every whole clip (a video shorter than one clip gives its padded clip).
"""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path

import torch

from models import Latents

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.vtw.container import open_vtw, read_vtw
from vidtwin_cli.errors import ContainerError, InputError, UsageError
from vidtwin_cli.media import labels_from_folders, read_labels
from vidtwin_cli.codec.options import EncodeOptions
from vidtwin_cli.codec.pipeline import encode_video
from vidtwin_cli.codec.model_session import ModelSession

log = logging.getLogger(__name__)

CACHE_DTYPE = "fp32"


def labelled_videos(data: list[str], labels: Path | None, from_folders: bool) -> list[tuple[Path, str]]:
    """(video, class name) rows from `--labels CSV` or from `--data DIR --labels-from-folders`."""
    if (labels is None) == (not from_folders):
        raise UsageError("give either --labels labels.csv or --labels-from-folders (with --data DIR)")
    if labels is not None:
        if data:
            raise UsageError("--labels names the videos itself (paths relative to the CSV); drop --data")
        return read_labels(labels)
    if not data:
        raise UsageError("--labels-from-folders needs --data DIR (class folders DIR/<class>/*.mp4)")
    return [row for d in data for row in labels_from_folders(Path(d))]


def cache_name(video: Path, weights_sha256: str, fit: str) -> str:
    """The cache file of one video for one autoencoder and fit mode."""
    stat = video.stat()
    key = f"{video.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{weights_sha256}\0{fit}"
    return hashlib.sha256(key.encode()).hexdigest()[:32] + ".vtw"


def _reusable(path: Path, weights_sha256: str) -> bool:
    try:
        with open_vtw(path) as reader:
            return reader.header.model.weights_sha256 == weights_sha256
    except (ContainerError, InputError):
        return False


def encode_cache(
    videos: list[Path],
    session: ModelSession,
    cache_dir: Path,
    fit: str = "crop",
    progress: Progress | None = None,
    warn: Warn = log.warning,
) -> list[Path | None]:
    """Encode every video (or reuse its cached `.vtw`); None (and a warning) for a video that cannot be read."""
    loaded, _ = session.load()
    cache_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path | None] = []
    for video in videos:
        try:
            dst = cache_dir / cache_name(video, loaded.sha256, fit)
            if not _reusable(dst, loaded.sha256):
                encode_video(video, dst, session, EncodeOptions(fit, CACHE_DTYPE))
            files.append(dst)
        except (InputError, OSError) as e:
            warn(f"skipping {e}")
            files.append(None)
        if progress is not None:
            progress(1)
    return files


def load_cache(files: list[Path], class_ids: list[int]) -> tuple[Latents, torch.Tensor, Fraction]:
    """The training rows of cached `.vtw` files: Latents (N rows), class ids (N,), the first video's fps."""
    if not files:
        raise InputError("no training latents: none of the videos could be encoded")
    parts, labels, rates = [], [], []
    for path, label in zip(files, class_ids):
        vtw = read_vtw(path)
        h = vtw.header
        whole = max(1, h.video.frame_count // h.model.config.frames)  # clips without padded frames
        rows = whole * h.tiles_per_clip
        parts.append(vtw.latents.select(slice(0, rows)))
        labels += [label] * rows
        rates.append(h.video.fps)
    return Latents.cat(parts), torch.tensor(labels, dtype=torch.long), rates[0]
