"""Labelled video collections: a `path,class` CSV or one folder per class."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from vidtwin_cli.atomic import atomic_path
from vidtwin_cli.errors import InputError
from vidtwin_cli.training.data import list_videos

LABELS_FILE = "labels.csv"


def write_labels(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """`path,class` CSV with a header row, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class"])
        writer.writerows(rows)


def read_labels(path: Path) -> list[tuple[Path, str]]:
    """(video path resolved against the CSV's folder, class name) rows of a `path,class` CSV."""
    if not path.is_file():
        raise InputError(f"{path}: no such labels file")
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: unreadable labels file ({e})") from e
    if not rows or [c.strip() for c in rows[0]] != ["path", "class"]:
        raise InputError(f"{path}: the first row must be the header 'path,class'")
    out = []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{path}: line {i} is not 'path,class'")
        out.append((path.parent / row[0].strip(), row[1].strip()))
    if not out:
        raise InputError(f"{path}: no labelled videos")
    return out


def labels_from_folders(root: Path) -> list[tuple[Path, str]]:
    """(video, class) for every video under root/<class>/ (searched recursively; class = folder name), sorted."""
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    rows = [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir() for p in list_videos([str(d)])]
    if not rows:
        raise InputError(f"{root}: no videos in class folders ({root}/<class>/*.mp4)")
    return rows
