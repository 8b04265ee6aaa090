"""The byte level of a `.vtw`, which is a safetensors file: deterministic writing, defensive parsing.

Nothing here knows what the tensors mean (`header.py` does). This module writes the
safetensors framing deterministically and makes sure untrusted bytes are well-formed safetensors
before anything else looks at them: a bounded header length that fits the file, strict JSON,
well-typed tensor entries whose byte spans tile the data section exactly. Every failure is one
`ContainerError` line that starts with the file's name.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import torch

from vidtwin_cli.errors import ContainerError, one_line

LENGTH_FIELD = 8  # u64 little-endian header length at the start of every safetensors file
MAX_HEADER_BYTES = 1 << 20  # a .vtw header needs a few KiB; larger is hostile or not a .vtw
MAX_TENSORS = 64
MAX_INT = (1 << 63) - 1  # any dim or offset beyond this cannot describe bytes in a file
ST_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "I8": torch.int8, "I64": torch.int64}

Entries = dict[str, dict[str, Any]]  # tensor name -> {"dtype": str, "shape": [int], "data_offsets": [begin, end]}


Layout = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (safetensors dtype, shape)


def canonical_order(layout: Layout) -> list[str]:
    """How vidtwin lays tensors out: descending item size, then name (each aligned to its item size,
    as the safetensors library does)."""
    return sorted(layout, key=lambda k: (-ST_DTYPES[layout[k][0]].itemsize, k))


def header_bytes(layout: Layout, metadata: dict[str, str]) -> bytes:
    """Length field + JSON header of a file whose tensors follow in `canonical_order(layout)`.

    Identical input gives identical bytes (the library's own `save` emits metadata keys in random
    order): metadata keys sorted, compact JSON, space-padded to a multiple of 8 bytes.
    """
    entries, offset = {}, 0
    for key in canonical_order(layout):
        dtype, shape = layout[key]
        nbytes = math.prod(shape) * ST_DTYPES[dtype].itemsize
        entries[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header = json.dumps({"__metadata__": dict(sorted(metadata.items())), **entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % LENGTH_FIELD)
    return struct.pack("<Q", len(header)) + header


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """A tensor's raw bytes as safetensors stores them: row-major, little-endian (torch's layout on
    every platform it supports)."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().data


def parse_header(name: str, data: bytes, size: int) -> tuple[dict[str, Any] | None, Entries, int]:
    """Split the safetensors header of a file of `size` bytes that starts with `data`.

    Returns (the `__metadata__` object or None, the other entries unchecked, where tensor data starts).
    """
    if size == 0:
        raise ContainerError(f"{name}: empty file, not a .vtw")
    if size < LENGTH_FIELD:
        raise ContainerError(f"{name}: truncated, {size} bytes is too short for a .vtw")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > MAX_HEADER_BYTES:
        raise ContainerError(f"{name}: not a .vtw file (header length {n} exceeds {MAX_HEADER_BYTES} bytes)")
    if LENGTH_FIELD + n > size:
        raise ContainerError(f"{name}: truncated, the header needs {n} bytes but {size - LENGTH_FIELD} follow")
    try:
        outer = strict_json(bytes(data[LENGTH_FIELD : LENGTH_FIELD + n]).decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ContainerError(f"{name}: corrupt header or not a .vtw (not valid JSON: {one_line(e)})") from e
    if type(outer) is not dict:
        raise ContainerError(f"{name}: corrupt header or not a .vtw (not a JSON object)")
    meta = outer.pop("__metadata__", None)
    return (meta if type(meta) is dict else None), outer, LENGTH_FIELD + n


def check_spans(name: str, entries: Entries, data_bytes: int) -> None:
    """Every entry well-typed, and the spans tile a data section of `data_bytes` bytes exactly."""
    if len(entries) > MAX_TENSORS:
        raise ContainerError(f"{name}: {len(entries)} tensors, more than the {MAX_TENSORS} a .vtw may hold")
    for key, entry in entries.items():
        if not _valid_entry(entry):
            raise ContainerError(f"{name}: corrupt tensor entry {short(key)}: {short(entry)}")
    end = max((e["data_offsets"][1] for e in entries.values()), default=0)
    if end > data_bytes:
        raise ContainerError(f"{name}: truncated, the tensor data needs {end} bytes but {data_bytes} are present")
    pos = 0
    for key, entry in sorted(entries.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = entry["data_offsets"]
        if begin != pos:
            raise ContainerError(f"{name}: corrupt tensor table, {key!r} starts at byte {begin}, expected {pos}")
        dtype = ST_DTYPES.get(entry["dtype"])
        if dtype is not None and stop - begin != math.prod(entry["shape"]) * dtype.itemsize:
            raise ContainerError(f"{name}: corrupt tensor table, {key!r} spans {stop - begin} bytes, "
                                 f"its shape needs {math.prod(entry['shape']) * dtype.itemsize}")
        pos = stop
    if pos != data_bytes:
        raise ContainerError(f"{name}: {data_bytes - pos} unexpected bytes after the tensor data")


def _valid_entry(entry: object) -> bool:
    if type(entry) is not dict or type(entry.get("dtype")) is not str:
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if type(shape) is not list or not all(type(s) is int and 0 <= s <= MAX_INT for s in shape):
        return False
    if type(offsets) is not list or len(offsets) != 2 or not all(type(o) is int and o <= MAX_INT for o in offsets):
        return False
    return 0 <= offsets[0] <= offsets[1]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN, Infinity, numbers that overflow to infinity, and strings that are
    not Unicode text (a lone surrogate escape such as "\\ud800" cannot be encoded as UTF-8)."""
    value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    pending = [value]
    while pending:  # iterative: nesting depth is bounded by the parser, not by our stack
        node = pending.pop()
        if type(node) is dict:
            pending.extend(node.keys())
            pending.extend(node.values())
        elif type(node) is list:
            pending.extend(node)
        elif type(node) is str:
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"a string holds a lone surrogate {short(node[e.start:e.end])}") from None


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not allowed")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token[:20]} is not a finite number")
    return value


def short(value: object, limit: int = 60) -> str:
    """repr() cut to `limit` characters: hostile values stay readable in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
