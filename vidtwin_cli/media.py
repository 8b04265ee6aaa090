"""Facts about media collections, in one place: which files are videos, how lists of files are
written, and how labelled collections (`path,class` CSV or one folder per class) are read.

Used by training (`list_videos`), batch (`list_entries`, `VIDEO_PATTERNS`), generation and the
`datasets` command (labels).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from vidtwin_cli.atomic import atomic_path
from vidtwin_cli.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".wmv",
                  ".3gp", ".ogv", ".y4m", ".nut", ".gif")  # fmt: skip
VIDEO_PATTERNS = tuple(f"*{suffix}" for suffix in VIDEO_SUFFIXES)  # for folder searches by glob
TEXT_LISTS = (".txt", ".lst", ".list")  # one path a line, `#` comments
CSV_LISTS = (".csv",)  # a header row with a path column
JSON_LISTS = (".jsonl", ".ndjson")  # one object a line with a path key, or one string
LIST_SUFFIXES = TEXT_LISTS + CSV_LISTS + JSON_LISTS
PATH_KEYS = ("path", "input", "file")  # the column or key that names a file in a CSV/JSONL list
LABELS_FILE = "labels.csv"


def is_video(path: Path) -> bool:
    """Whether the file name has a video suffix (case-insensitive)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def list_entries(path: Path) -> list[str]:
    """The path strings of a text, CSV or JSON-lines list (as written, relative paths unresolved)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the list of inputs ({e})") from e
    if suffix in TEXT_LISTS:
        lines = (line.strip() for line in text.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    if suffix in CSV_LISTS:
        rows = csv.DictReader(text.splitlines())
        key = next((k for k in PATH_KEYS if k in (rows.fieldnames or ())), None)
        if key is None:
            raise InputError(f"{path}: a CSV list needs a header row with a {' or '.join(PATH_KEYS)} column")
        return [row[key].strip() for row in rows if (row[key] or "").strip()]
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{number}: not a JSON object ({e.msg})") from e
        value = next((record[k] for k in PATH_KEYS if k in record), None) if isinstance(record, dict) else record
        if not isinstance(value, str):
            raise InputError(f"{path}:{number}: needs a string under one of {', '.join(PATH_KEYS)}")
        entries.append(value)
    return entries


def list_videos(sources: Iterable[str]) -> list[Path]:
    """Expand videos, folders (recursive, by video suffix) and list files (paths relative to the
    list) into a sorted, de-duplicated list of absolute paths."""
    found: list[Path] = []
    for src in sources:
        path = Path(src)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_video(p))
        elif path.suffix.lower() in LIST_SUFFIXES:
            found += [p if p.is_absolute() else path.parent / p for p in map(Path, list_entries(path))]
        elif path.exists():
            found.append(path)
        else:
            raise InputError(f"{path}: no such video, folder or list file")
    return list(dict.fromkeys(p.resolve() for p in found))


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
