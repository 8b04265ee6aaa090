"""Which files a batch works on: a folder tree or a list of paths, split into shards, mapped to outputs.

Everything here is deterministic: the same SRC, patterns and shard give the same files in the same
order with the same output paths on any machine, so independent processes (a Slurm or Kubernetes
array) can each take one shard without talking to each other.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.media import LIST_SUFFIXES, list_entries

VTW_PATTERNS = ("*.vtw",)


@dataclass(frozen=True)
class InputFile:
    """One input: where it is, and where it sits in the tree that OUT_DIR mirrors."""

    path: Path  # absolute
    rel: PurePosixPath  # relative to the root of the tree

    def output(self, out_dir: Path, suffix: str) -> Path:
        return out_dir.joinpath(*self.rel.parts).with_suffix(suffix)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' with 0 <= i < N."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        sep = ""
    if not sep or not 0 <= i < n:
        raise UsageError(f"--shard {text!r} must be i/N with 0 <= i < N, e.g. 0/4")
    return i, n


def shard_of(item: InputFile, count: int) -> int:
    """The shard an input belongs to: a hash of its relative path, so it never moves as files are added."""
    digest = hashlib.sha256(item.rel.as_posix().encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def take_shard(items: Sequence[InputFile], index: int, count: int) -> list[InputFile]:
    return [item for item in items if shard_of(item, count) == index]


def _matches(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    name = rel.as_posix().lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


def _walk(root: Path, patterns: Sequence[str], exclude: Path | None) -> list[InputFile]:
    """Files under `root` matching a pattern; hidden files and folders (atomic temporaries) are skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != exclude)
        for name in sorted(files):
            if name.startswith("."):
                continue
            rel = PurePosixPath((here / name).relative_to(root).as_posix())
            if _matches(rel, patterns):
                found.append(InputFile(here / name, rel))
    return found


def _from_list(path: Path, root: Path) -> list[InputFile]:
    items, seen = [], set()
    for entry in list_entries(path):
        file = Path(os.path.abspath(path.parent / os.path.expanduser(entry)))  # relative to the list
        if file in seen:
            continue
        seen.add(file)
        try:
            rel = file.relative_to(root)
        except ValueError as e:
            raise UsageError(f"{file} (listed in {path}) is outside the root {root}; pass --root to a folder "
                             "that holds every input") from e
        items.append(InputFile(file, PurePosixPath(rel.as_posix())))
    return items


def discover(src: Path, patterns: Sequence[str], root: Path | None = None, exclude: Path | None = None) -> list[InputFile]:
    """The inputs named by SRC: a folder (recursive, files matching `patterns`) or a list file.

    A list (.txt/.lst one path a line, `#` comments; .csv with a path column; .jsonl objects with a
    "path" key) may hold paths relative to itself; they mirror the tree below `root` (default: the
    list's folder). Patterns match the path relative to the folder, case-insensitively, and `*`
    crosses folders (`*.mp4` finds every mp4). `exclude` (OUT_DIR) is never searched.
    """
    src = Path(os.path.abspath(src))
    if src.is_dir():
        if root is not None:
            raise UsageError("--root applies to a list of inputs; a folder is its own root")
        return _walk(src, patterns, Path(os.path.abspath(exclude)) if exclude else None)
    if not src.exists():
        raise InputError(f"{src}: no such folder or list of inputs")
    if src.suffix.lower() not in LIST_SUFFIXES:
        raise UsageError(f"{src}: SRC must be a folder or a list of inputs ({', '.join(LIST_SUFFIXES)})")
    return _from_list(src, Path(os.path.abspath(root)) if root else src.parent)


def plan_outputs(items: Sequence[InputFile], out_dir: Path, suffix: str) -> list[tuple[InputFile, Path]]:
    """Each input with its mirrored output path; two inputs that would share one output are an error."""
    pairs = [(item, item.output(out_dir, suffix)) for item in items]
    owner: dict[Path, InputFile] = {}
    for item, dst in pairs:
        if dst in owner:
            raise UsageError(f"{owner[dst].path} and {item.path} would both write {dst}; "
                             "rename one or narrow --glob")  # fmt: skip
        if dst == item.path:
            raise UsageError(f"{item.path} would be overwritten by its own output; pick another -o")
        owner[dst] = item
    return pairs


def plan(src: Path, out_dir: Path, suffix: str, patterns: Sequence[str], root: Path | None = None,
         shard: tuple[int, int] = (0, 1)) -> list[tuple[InputFile, Path]]:  # fmt: skip
    """The (input, output) pairs of one batch: discovered, sharded, mapped under `out_dir`."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir} is not a directory")
    if src.is_dir() and out_dir.exists() and os.path.samefile(src, out_dir):
        raise UsageError("-o must differ from the SRC folder (outputs could overwrite inputs); pick another folder")
    items = take_shard(discover(src, patterns, root, exclude=out_dir), *shard)
    return plan_outputs(items, Path(os.path.abspath(out_dir)), suffix)
