"""Quantised, range-coded latents: the coding layer of `.vtw` 2.0 (docs/vtw-format.md, part 2).

Every latent value becomes an integer symbol `q = round(x / step)` with one step for the whole file.
Clip k's symbols are stored as the difference from clip k-1 (same tile, same position) except at
key clips (every `keyint` clips), where they are stored as they are. Each chunk of symbols is
range-coded with `constriction` under a categorical model per (tensor, key|delta) context whose
table is integer frequencies counted over the whole file and stored in it. Both sides build the
model from the same integers through the same library code, so symbols decode bit-exactly
anywhere; the only float is `q · step`, computed in float32 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import constriction

from models import Latents

from vidtwin_cli.defaults import DEFAULT_KEYINT, DEFAULT_QUALITY
from vidtwin_cli.interrupts import Interrupted

STREAMS = ("structure", "dynamics_x", "dynamics_y")  # the latent tensors, in coding order
KINDS = ("key", "delta")
QUALITIES = range(1, 13)  # --quality: the step halves every 2 levels
TABLE_TOTAL = 1 << 14  # frequencies are scaled to about this total (constriction keeps 24-bit precision)
MAX_ALPHABET = 1 << 12  # symbols per table (at least 2); a wider spread means a step far too fine for the latents
MAX_SYMBOL = 1 << 15  # |q| fits int16 spools; residuals of two such symbols fit int32


def step_for_quality(quality: int, sigma: float) -> float:
    """The quantisation step of `--quality` for latents of standard deviation `sigma`.

    quality 6 is σ, 7 is σ / √2; each level up divides the step by √2.
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality {quality} is not in {QUALITIES.start}..{QUALITIES.stop - 1}")
    return float(sigma * 2.0 ** ((6 - quality) / 2))


def latent_sigma(latents: Latents) -> float:
    """Standard deviation of all latent values of `latents` pooled (float64)."""
    values = torch.cat([getattr(latents, key).detach().to("cpu", torch.float64).reshape(-1) for key in STREAMS])
    return float(values.std()) if values.numel() > 1 else 1.0


def quantise(latents: Latents, step: float) -> dict[str, np.ndarray]:
    """Symbols of each latent tensor: round-half-to-even(x / step) as int16 (ValueError past ±MAX_SYMBOL)."""
    out = {}
    for key in STREAMS:
        q = np.rint(getattr(latents, key).detach().to("cpu", torch.float64).numpy() / step)  # half to even
        if q.size and np.abs(q).max() >= MAX_SYMBOL:
            raise ValueError(f"{key} latents reach {np.abs(q).max():.0f} steps; the step {step:.3g} is too fine")
        out[key] = q.astype(np.int16)
    return out


def dequantise(symbols: dict[str, np.ndarray], step: float) -> Latents:
    """float32 latents q · step (computed in float32 on the CPU, the same everywhere)."""
    s = np.float32(step)
    return Latents(*(torch.from_numpy(symbols[key].astype(np.float32) * s) for key in STREAMS))


def residual(symbols: dict[str, np.ndarray], previous: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """What a clip stores: its symbols (key clip, previous None) or their difference from the previous clip."""
    if previous is None:
        return {key: symbols[key].astype(np.int32) for key in STREAMS}
    return {key: symbols[key].astype(np.int32) - previous[key] for key in STREAMS}


def reconstruct(stored: dict[str, np.ndarray], previous: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Inverse of `residual`."""
    if previous is None:
        return {key: stored[key].astype(np.int16) for key in STREAMS}
    return {key: (stored[key] + previous[key]).astype(np.int16) for key in STREAMS}


# --------------------------------------------------------------------------- probability tables


@dataclass(frozen=True)
class Table:
    """A categorical model over the symbols lo .. lo + len(freqs) - 1 with integer frequencies."""

    lo: int
    freqs: tuple[int, ...]

    def model(self) -> constriction.stream.model.Categorical:
        return constriction.stream.model.Categorical(np.asarray(self.freqs, dtype=np.float64), perfect=False)

    def bits(self, counts: np.ndarray) -> float:
        """Ideal code length in bits of symbols with these counts (aligned with `freqs`)."""
        p = np.asarray(self.freqs, dtype=np.float64) / sum(self.freqs)
        used = counts > 0
        return float(-(counts[used] * np.log2(p[used])).sum())


class Histogram:
    """Counts symbols per (tensor, kind) context while a file is written; `tables()` at the end."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], dict[int, int]] = {(k, kind): {} for k in STREAMS for kind in KINDS}

    def add(self, stored: dict[str, np.ndarray], kind: str) -> None:
        for key in STREAMS:
            values, counts = np.unique(stored[key], return_counts=True)
            bucket = self._counts[key, kind]
            for v, c in zip(values.tolist(), counts.tolist(), strict=True):
                bucket[v] = bucket.get(v, 0) + c

    def tables(self) -> dict[tuple[str, str], Table]:
        """Scaled integer tables; ValueError when a context spans more than MAX_ALPHABET symbols."""
        out = {}
        for context, bucket in self._counts.items():
            if not bucket:
                out[context] = Table(0, (1, 0))
                continue
            lo, hi = min(bucket), max(bucket)
            hi = max(hi, lo + 1)  # constriction needs two symbols or more
            if hi - lo + 1 > MAX_ALPHABET:
                raise ValueError(f"{context[0]} symbols span {hi - lo + 1} values (more than {MAX_ALPHABET}); "
                                 "the step is too fine for these latents")
            total = sum(bucket.values())
            freqs = [bucket.get(v, 0) for v in range(lo, hi + 1)]
            out[context] = Table(lo, tuple(max(1, f * TABLE_TOTAL // total) if f else 0 for f in freqs))
        return out


def pack_tables(tables: dict[tuple[str, str], Table]) -> bytes:
    """Tables in context order (STREAMS × KINDS): zigzag varint lo, varint n, n varint frequencies."""
    out = bytearray()
    for key in STREAMS:
        for kind in KINDS:
            t = tables[key, kind]
            out += _varint(_zigzag(t.lo)) + _varint(len(t.freqs))
            for f in t.freqs:
                out += _varint(f)
    return bytes(out)


def unpack_tables(data: bytes) -> dict[tuple[str, str], Table]:
    """Inverse of `pack_tables` for untrusted bytes (ValueError on anything malformed)."""
    pos, tables = 0, {}
    for key in STREAMS:
        for kind in KINDS:
            lo, pos = _read_varint(data, pos)
            n, pos = _read_varint(data, pos)
            if not 2 <= n <= MAX_ALPHABET:
                raise ValueError(f"{key} {kind} table has {n} symbols (2..{MAX_ALPHABET} allowed)")
            freqs = []
            for _ in range(n):
                f, pos = _read_varint(data, pos)
                if f > TABLE_TOTAL:
                    raise ValueError(f"{key} {kind} table frequency {f} exceeds {TABLE_TOTAL}")
                freqs.append(f)
            lo = _unzigzag(lo)
            if sum(freqs) == 0 or abs(lo) > 2 * MAX_SYMBOL or abs(lo + n) > 2 * MAX_SYMBOL:
                raise ValueError(f"{key} {kind} table is empty or out of range")
            tables[key, kind] = Table(lo, tuple(freqs))
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the probability tables")
    return tables


# --------------------------------------------------------------------------- range coding


class Models:
    """constriction models of a file's tables, built once."""

    def __init__(self, tables: dict[tuple[str, str], Table]) -> None:
        self.tables = tables
        self._models = {context: t.model() for context, t in tables.items()}

    def encode(self, stored: dict[str, np.ndarray], kind: str) -> bytes:
        """One clip's stored symbols (key symbols or residuals) as range-coder bytes."""
        encoder = constriction.stream.queue.RangeEncoder()  # a native module: no submodule imports
        for key in STREAMS:
            t = self.tables[key, kind]
            index = stored[key].reshape(-1) - t.lo
            if index.size and (index.min() < 0 or index.max() >= len(t.freqs)):
                raise ValueError(f"{key} symbol outside its table")  # tables are counted from these symbols
            encoder.encode(index.astype(np.int32), self._models[key, kind])
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, kind: str, shapes: dict[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """Inverse of `encode` (ValueError when the bytes are not a whole coded clip)."""
        if len(data) % 4:
            raise ValueError(f"coded clip of {len(data)} bytes is not whole 32-bit words")
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        out = {}
        for key in STREAMS:
            t = self.tables[key, kind]
            n = math.prod(shapes[key])
            try:
                index = decoder.decode(self._models[key, kind], n)
            except BaseException as e:  # constriction raises a Rust panic (a BaseException) on hostile data
                if isinstance(e, KeyboardInterrupt | SystemExit | Interrupted):  # a stop request, not bad data
                    raise
                raise ValueError(f"undecodable {key} symbols ({e})") from None
            out[key] = (np.asarray(index, dtype=np.int32) + t.lo).reshape(shapes[key])
        if not decoder.maybe_exhausted():
            raise ValueError("coded clip has bytes left over")
        return out


def ideal_bits(stored: Iterable[tuple[dict[str, np.ndarray], str]], tables: dict[tuple[str, str], Table]) -> float:
    """The empirical code length under `tables` of (stored symbols, kind) pairs, in bits."""
    total = 0.0
    for symbols, kind in stored:
        for key in STREAMS:
            t = tables[key, kind]
            counts = np.bincount(symbols[key].reshape(-1) - t.lo, minlength=len(t.freqs))
            total += t.bits(counts)
    return total


# --------------------------------------------------------------------------- varints


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def _varint(u: int) -> bytes:
    out = bytearray()
    while True:
        byte, u = u & 0x7F, u >> 7
        out.append(byte | (0x80 if u else 0))
        if not u:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 35, 7):  # at most 5 bytes: every value here is below 2^32
        if pos >= len(data):
            raise ValueError("probability tables end mid-number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 5 bytes in the probability tables")
