"""Our own safetensors files (models, DiTs, LPIPS weights): tensors plus string metadata whose
`format` key says what the file is. One reader checks that tag; one writer writes atomically."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from vidtwin_cli.atomic import atomic_path
from vidtwin_cli.errors import InputError, ModelError

Tensors = dict[str, torch.Tensor]


def read_tagged(path: Path, format: str, what: str, hint: str) -> tuple[Tensors, dict[str, str]]:
    """Tensors and metadata of a safetensors file tagged `format=<format>`.

    `what` names the kind of file in messages ("model", "DiT"), `hint` says how to get a right one.
    A missing or unreadable file is an InputError, a file of another kind a ModelError.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what} file")
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from e
    if meta.get("format") != format:
        raise ModelError(f"{path}: not a vidtwin {what} file (metadata format={meta.get('format')!r}); {hint}")
    return tensors, meta


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file: its header only, cheap whatever the file's size."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from e


def write_tagged(path: Path, tensors: Tensors, format: str, metadata: dict[str, str]) -> None:
    """Write `tensors` with `metadata` and the `format` tag, atomically."""
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={**metadata, "format": format})
