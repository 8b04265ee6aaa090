"""`.vtw` 2.0 files: entropy-coded latents in checksummed per-clip chunks (docs/vtw-format.md, part 2).

`CodedWriter` quantises each clip as it arrives and spools its int16 symbols to an anonymous
temporary file (memory: one clip); `finish` counts the probability tables, then writes the header,
the tables and one range-coded chunk per clip, atomically. `open_coded` walks and checks every
chunk, decodes every clip once (so a damaged file fails before any latent is used), and returns a
`CodedReader` that seeks through the clip index: clip k costs decoding from its key clip at most.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from models import Latents

from vidtwin_cli import __version__
from vidtwin_cli.atomic import atomic_output
from vidtwin_cli.errors import ContainerError, RuntimeFailure, UsageError, one_line
from vidtwin_cli.video.info import Geometry, VideoInfo
from vidtwin_cli.vtw import chunks
from vidtwin_cli.video.audio import AudioTrack
from vidtwin_cli.vtw.audio import pack_packets, pack_tracks, unpack_packets, unpack_tracks
from vidtwin_cli.vtw.entropy import (
    DEFAULT_KEYINT,
    DEFAULT_QUALITY,
    STREAMS,
    Histogram,
    Models,
    dequantise,
    latent_sigma,
    quantise,
    reconstruct,
    residual,
    step_for_quality,
    unpack_tables,
    pack_tables,
)
from vidtwin_cli.vtw.header import ENTROPY, MAX_KEYINT, MAX_STEP, ModelRef, VtwHeader, check_latents

HEAD, TABL, PTS, AUDS, CLIP, APKT, INDX = b"HEAD", b"TABL", b"PTS ", b"AUDS", b"CLIP", b"APKT", b"INDX"
CLIP_PREFIX = struct.Struct("<IB")  # clip index, kind (0 key, 1 delta)
KIND_CODES = {"key": 0, "delta": 1}


@dataclass(frozen=True)
class EntropyCoding:
    """How latents are entropy-coded: `step` (latent units) or `quality` (a step relative to the latents' σ)."""

    quality: int = DEFAULT_QUALITY
    step: float | None = None  # overrides quality
    keyint: int = DEFAULT_KEYINT

    def __post_init__(self) -> None:
        if self.step is not None and not 0 < self.step <= MAX_STEP:
            raise UsageError(f"--step {self.step} must be in (0, {MAX_STEP:g}]")
        if not 1 <= self.keyint <= MAX_KEYINT:
            raise UsageError(f"--keyint {self.keyint} must be in 1..{MAX_KEYINT}")
        try:
            step_for_quality(self.quality, 1.0)
        except ValueError as e:
            raise UsageError(f"--quality: {e}") from None


def kind_of(clip: int, keyint: int) -> str:
    return "key" if clip % keyint == 0 else "delta"


class CodedWriter:
    """Writes a `.vtw` 2.0 a clip at a time in constant memory; the file appears only on `finish`.

    The same interface as `VtwWriter`: `add(latents)` with rows in order, `finish(video)`, `close()`.
    With a `quality`, the step is set from the standard deviation of the first clip's latents.
    """

    def __init__(self, dst: Path | str, model: ModelRef, geometry: Geometry, coding: EntropyCoding, *,
                 sampled: bool = False, seed: int | None = None, provenance: dict[str, Any] | None = None,
                 tool: str = "vidtwin", tool_version: str = __version__) -> None:
        self.dst, self.model, self.geometry, self.coding = dst, model, geometry, coding
        self._fields = {"sampled": sampled, "seed": seed, "provenance": provenance or {}, "tool": tool,
                        "tool_version": tool_version}
        self.step = coding.step
        self.rows = 0
        self.header: VtwHeader | None = None
        self.audio: list[AudioTrack] = []
        self._spool: IO[bytes] = tempfile.TemporaryFile()
        self._audio_spool: IO[bytes] = tempfile.TemporaryFile()
        self._audio_chunks = 0
        self._pending: list[Latents] = []
        self._previous: dict[str, np.ndarray] | None = None
        self._histogram = Histogram()
        self._clips = 0

    def add(self, latents: Latents) -> None:
        """Append rows (float latents of any device/dtype); whole clips are quantised as they complete."""
        check_latents(self.model.config, latents)
        tiles = self.geometry.tiles_per_clip
        for start in range(latents.structure.shape[0]):
            self._pending.append(Latents(*(getattr(latents, k)[start : start + 1] for k in STREAMS)))
            self.rows += 1
            if len(self._pending) == tiles:
                clip = Latents(*(torch.cat([getattr(p, k) for p in self._pending]) for k in STREAMS))
                self._pending = []
                self._add_clip(clip)

    def _add_clip(self, clip: Latents) -> None:
        for key in STREAMS:
            if not torch.isfinite(getattr(clip, key)).all():
                raise RuntimeFailure(f"refusing to write non-finite {key} latents")
        if self.step is None:
            self.step = step_for_quality(self.coding.quality, latent_sigma(clip) or 1.0)
        try:
            symbols = quantise(clip, self.step)
        except ValueError as e:
            raise UsageError(f"{e}; use a larger --step or a lower --quality") from None
        kind = kind_of(self._clips, self.coding.keyint)
        self._histogram.add(residual(symbols, None if kind == "key" else self._previous), kind)
        for key in STREAMS:
            self._spool.write(symbols[key].astype("<i2").tobytes())
        self._previous = symbols
        self._clips += 1

    def add_audio(self, tracks: list[AudioTrack], packets: Iterator[tuple[int, list]]) -> None:
        """Keep the source's compressed audio: track descriptions, then (track, packets) batches."""
        self.audio = tracks
        for track, batch in packets:
            self._audio_spool.write(chunks.chunk_bytes(APKT, pack_packets(track, batch)))
            self._audio_chunks += 1

    def finish(self, video: VideoInfo) -> int:
        """Code every clip and write the file atomically; returns its size in bytes."""
        if self._pending:
            raise ValueError(f"{self.rows} latent rows are not whole clips of {self.geometry.tiles_per_clip} tiles")
        header = VtwHeader(self.model, video, self.geometry, self._clips, ENTROPY, **self._fields,
                           step=float(self.step if self.step is not None else 1.0), keyint=self.coding.keyint)
        try:
            tables = self._histogram.tables()
        except ValueError as e:
            raise UsageError(f"{e}; use a larger --step or a lower --quality") from None
        models = Models(tables)
        shapes = _shapes(header)
        written = 0
        with atomic_output(self.dst) as f:

            def put(kind: bytes, payload: bytes) -> int:
                nonlocal written
                at = written
                data = chunks.chunk_bytes(kind, payload)
                f.write(data)
                written += len(data)
                return at

            f.write(chunks.prefix_bytes())
            written = chunks.PREFIX_BYTES
            put(HEAD, header.to_json().encode("utf-8"))
            put(TABL, pack_tables(tables))
            if video.pts is not None:
                put(PTS, np.asarray(video.pts, dtype="<i8").tobytes())
            if self.audio:
                put(AUDS, pack_tracks(self.audio))
            offsets, previous = [], None
            self._spool.seek(0)
            for index in range(self._clips):
                symbols = {key: np.frombuffer(self._spool.read(2 * math.prod(shapes[key])), dtype="<i2")
                           .reshape(shapes[key]) for key in STREAMS}  # fmt: skip
                kind = kind_of(index, self.coding.keyint)
                stored = residual(symbols, None if kind == "key" else previous)
                offsets.append(put(CLIP, CLIP_PREFIX.pack(index, KIND_CODES[kind]) + models.encode(stored, kind)))
                previous = symbols
            audio_offsets = []
            self._audio_spool.seek(0)
            for _ in range(self._audio_chunks):
                head = self._audio_spool.read(chunks.CHUNK_HEAD.size)
                (_, n) = chunks.CHUNK_HEAD.unpack(head)
                rest = self._audio_spool.read(n + chunks.CRC.size)
                audio_offsets.append(written)
                f.write(head + rest)
                written += len(head) + len(rest)
            index_at = put(INDX, _pack_index(offsets, audio_offsets))
            f.write(chunks.trailer_bytes(index_at))
            written += chunks.TRAILER.size
        self.close()
        self.header = header
        return written

    def close(self) -> None:
        self._spool.close()
        self._audio_spool.close()

    def __enter__(self) -> CodedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shapes(header: VtwHeader) -> dict[str, tuple[int, ...]]:
    cfg, tiles = header.model.config, header.tiles_per_clip
    return {"structure": (tiles, *cfg.structure_shape), "dynamics_x": (tiles, *cfg.dynamics_shape),
            "dynamics_y": (tiles, *cfg.dynamics_shape)}


def _pack_index(clips: list[int], audio: list[int]) -> bytes:
    return struct.pack(f"<I{len(clips)}QI{len(audio)}Q", len(clips), *clips, len(audio), *audio)


def _unpack_index(data: bytes) -> tuple[list[int], list[int]]:
    lists, pos = [], 0
    for _ in range(2):
        if pos + 4 > len(data):
            raise ValueError("index ends early")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + 8 * n > len(data):
            raise ValueError(f"index claims {n} offsets but holds {(len(data) - pos) // 8}")
        lists.append(list(struct.unpack_from(f"<{n}Q", data, pos)))
        pos += 8 * n
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} stray bytes in the index")
    return lists[0], lists[1]


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class CodedStats:
    """Sizes of a 2.0 file's parts, for `inspect`: bytes per chunk type, ideal bits per latent tensor."""

    chunk_bytes: dict[str, int]
    stream_bits: dict[str, float]
    key_clips: int


class CodedReader:
    """An open `.vtw` 2.0; `clip(k)` decodes from the key clip before k.

    Opened in full, everything has been checked and `sha256` is the file's; opened lazily (`open_coded`),
    each clip is checked as it is decoded, `sha256` is None and `stats` holds the metadata chunks only."""

    def __init__(self, name: str, header: VtwHeader, file: IO[bytes], stack: contextlib.ExitStack, file_bytes: int,
                 version: str, sha256: str | None, models: Models, clip_offsets: list[int], audio_offsets: list[int],
                 audio: list[AudioTrack], stats: CodedStats) -> None:
        self.name, self.header, self.file_bytes, self.version, self.sha256 = name, header, file_bytes, version, sha256
        self.audio, self.stats = audio, stats
        self._file, self._stack, self._models = file, stack, models
        self._clip_offsets, self._audio_offsets = clip_offsets, audio_offsets
        self._shapes = _shapes(header)
        self._last: tuple[int, dict[str, np.ndarray]] | None = None  # the last clip decoded, for sequential reads

    def symbols(self, index: int) -> dict[str, np.ndarray]:
        """Integer symbols of clip `index` (int16 arrays by tensor name), decoded from its key clip."""
        if not 0 <= index < self.header.clips:
            raise IndexError(f"clip {index} of {self.header.clips}")
        keyint = self.header.keyint
        start = index - index % keyint
        previous = None
        if self._last is not None and start <= self._last[0] <= index:
            start, previous = self._last[0] + 1, self._last[1]
            if self._last[0] == index:
                return previous
        for k in range(start, index + 1):
            previous = self._decode(k, previous)
        self._last = (index, previous)
        return previous

    def _decode(self, index: int, previous: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        _, payload, _ = chunks.read_chunk(self.name, self._file, self._clip_offsets[index], self.file_bytes)
        kind = kind_of(index, self.header.keyint)
        return _decode_clip(self.name, payload, index, kind, self._models, self._shapes, previous)

    def clip(self, index: int) -> Latents:
        """All tiles of clip `index`, float32 (symbol · step)."""
        return dequantise(self.symbols(index), self.header.step)

    def iter_clips(self) -> Iterator[Latents]:
        for index in range(self.header.clips):
            yield self.clip(index)

    def read_rows(self, start: int, stop: int) -> Latents:
        tiles = self.header.tiles_per_clip
        parts = [self.clip(i) for i in range(start // tiles, -(-stop // tiles))]
        first = (start // tiles) * tiles
        return Latents(*(torch.cat([getattr(p, k) for p in parts])[start - first : stop - first] for k in STREAMS))

    def audio_packets(self) -> Iterator[tuple[int, list]]:
        """(track, packets) batches in file order."""
        for offset in self._audio_offsets:
            _, payload, _ = chunks.read_chunk(self.name, self._file, offset, self.file_bytes)
            try:
                yield unpack_packets(payload, len(self.audio))
            except ValueError as e:
                raise ContainerError(f"{self.name}: bad audio chunk at byte {offset}: {one_line(e)}") from e

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> CodedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_clip(name: str, payload: bytes, index: int, kind: str, models: Models, shapes: dict,
                 previous: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    if len(payload) < CLIP_PREFIX.size:
        raise ContainerError(f"{name}: clip {index}: chunk too short")
    got, code = CLIP_PREFIX.unpack_from(payload)
    if (got, code) != (index, KIND_CODES[kind]):
        raise ContainerError(f"{name}: clip {index}: the chunk says clip {got} kind {code}, "
                             f"expected kind {KIND_CODES[kind]} ({kind})")
    try:
        stored = models.decode(payload[CLIP_PREFIX.size :], kind, shapes)
    except ValueError as e:
        raise ContainerError(f"{name}: clip {index}: {one_line(e)}") from e
    symbols = reconstruct(stored, previous)
    for key in STREAMS:  # residuals of hostile files may leave int16
        wide = stored[key] if previous is None else stored[key] + previous[key]
        if wide.size and np.abs(wide).max() >= 1 << 15:
            raise ContainerError(f"{name}: clip {index}: {key} symbols out of range")
    return symbols


METADATA = (HEAD, TABL, PTS, AUDS)  # the chunks before the first CLIP, each at most once


def open_coded(name: str, f: IO[bytes], size: int, stack: contextlib.ExitStack, lazy: bool = False) -> CodedReader:
    """Validate a `.vtw` 2.x whose signature has been seen (docs/vtw-format.md §16); see `open_vtw`.

    By default every chunk is walked and every clip decoded once, before any latent is handed out.
    `lazy` reads the trailer, the index and the metadata chunks only; each clip's chunk is checked when
    it is decoded, so reading a part of the file (`decode --range`) reads that part, from its key clip.
    """
    major, minor = chunks.read_version(name, f, size)
    if major != chunks.VERSION_2[0]:
        why = "written by a newer vidtwin; upgrade to read it" if major > chunks.VERSION_2[0] else "unknown"
        raise ContainerError(f"{name}: .vtw format version {major}.{minor} is not supported "
                             f"(this vidtwin reads 1.x and 2.x; {why})")
    index_at = chunks.read_trailer(name, f, size)
    end = size - chunks.TRAILER.size
    if lazy:
        found, sizes = _metadata_and_index(name, f, index_at, end, minor)
    else:
        found, sizes = _every_chunk(name, f, index_at, end, minor)
    try:
        header = VtwHeader.from_json(found[HEAD][0][1].decode("utf-8"))
        if header.dtype != ENTROPY:
            raise ValueError(f"latent_dtype {header.dtype!r} in a 2.0 file (2.0 holds {ENTROPY!r} latents)")
        tables = unpack_tables(found[TABL][0][1])
        clip_offsets, audio_offsets = _unpack_index(found[INDX][0][1])
        audio = unpack_tracks(found[AUDS][0][1]) if AUDS in found else []
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise ContainerError(f"{name}: bad header: {one_line(e)}") from e
    if lazy:
        _check_offsets(name, clip_offsets, audio_offsets, index_at)
    elif clip_offsets != [o for o, _ in found.get(CLIP, [])] or audio_offsets != [o for o, _ in found.get(APKT, [])]:
        raise ContainerError(f"{name}: the index does not match the chunks ({len(clip_offsets)} clips indexed, "
                             f"{len(found.get(CLIP, []))} present)")
    if len(clip_offsets) != header.clips:
        raise ContainerError(f"{name}: {len(clip_offsets)} clip chunks, the header says {header.clips}")
    if PTS in found:
        pts = np.frombuffer(found[PTS][0][1], dtype="<i8").tolist()
        try:
            header = dataclasses.replace(header, video=VideoInfo.from_dict({**header.video.to_dict(), "pts": pts}))
        except (ValueError, TypeError) as e:
            raise ContainerError(f"{name}: bad timestamps: {one_line(e)}") from e
    stats = CodedStats(sizes, {key: 0.0 for key in STREAMS}, -(-header.clips // header.keyint))
    sha = None if lazy else _sha256(f)
    reader = CodedReader(name, header, f, stack, size, "{}.{}".format(major, minor), sha, Models(tables),
                         clip_offsets, audio_offsets, audio, stats)
    if lazy:
        return reader
    previous = None
    for index in range(header.clips):  # every clip decodes, before any is used
        kind = kind_of(index, header.keyint)
        _, payload, _ = chunks.read_chunk(name, f, clip_offsets[index], size)
        stored_prev = None if kind == "key" else previous
        previous = _decode_clip(name, payload, index, kind, reader._models, reader._shapes, stored_prev)
        for key, bits in _bits(residual(previous, stored_prev), kind, tables).items():
            stats.stream_bits[key] += bits
    for _ in reader.audio_packets():
        pass
    return reader


Found = dict[bytes, list[tuple[int, bytes]]]  # chunk type -> (offset, payload) of each (payload of metadata only)


def _note(name: str, found: Found, sizes: dict[str, int], offset: int, kind: bytes, payload: bytes, minor: int) -> None:
    """Record one chunk met in file order, refusing a misplaced, repeated or unknown one."""
    if offset == chunks.PREFIX_BYTES and kind != HEAD:
        raise ContainerError(f"{name}: the first chunk is {kind!r}, not {HEAD!r}")
    if kind in (*METADATA, INDX) and kind in found:
        raise ContainerError(f"{name}: a second {kind.decode()!r} chunk at byte {offset}")
    if kind in (CLIP, APKT):
        found.setdefault(kind, []).append((offset, b""))
    elif kind in (*METADATA, INDX):
        found[kind] = [(offset, payload)]
    elif minor <= chunks.VERSION_2[1]:
        raise ContainerError(f"{name}: unknown chunk {kind!r} at byte {offset}")
    label = kind.decode("ascii", "backslashreplace").strip()
    sizes[label] = sizes.get(label, 0) + len(payload) + chunks.CHUNK_OVERHEAD


def _every_chunk(name: str, f: IO[bytes], index_at: int, end: int, minor: int) -> tuple[Found, dict[str, int]]:
    """Walk every chunk from the prefix to the trailer."""
    found: Found = {}
    sizes: dict[str, int] = {}
    last = None
    for offset, kind, payload in chunks.walk(name, f, chunks.PREFIX_BYTES, end):
        _note(name, found, sizes, offset, kind, payload, minor)
        last = kind
    if last != INDX or found[INDX][0][0] != index_at:
        raise ContainerError(f"{name}: the index is not the last chunk where the trailer says")
    for required in (TABL, INDX):
        if required not in found:
            raise ContainerError(f"{name}: no {required.decode()!r} chunk")
    return found, sizes


def _metadata_and_index(name: str, f: IO[bytes], index_at: int, end: int, minor: int) -> tuple[Found, dict[str, int]]:
    """The index chunk where the trailer says, and the metadata chunks from the prefix up to the first chunk
    it lists (or up to the index when it lists none)."""
    found: Found = {}
    sizes: dict[str, int] = {}
    kind, payload, following = chunks.read_chunk(name, f, index_at, end)
    if kind != INDX or following != end:
        raise ContainerError(f"{name}: the index is not the last chunk where the trailer says")
    try:
        clips, audio = _unpack_index(payload)
    except ValueError as e:
        raise ContainerError(f"{name}: bad header: {one_line(e)}") from e
    stop = min([index_at, *clips[:1], *audio[:1]])
    for offset, kind, chunk in chunks.walk(name, f, chunks.PREFIX_BYTES, stop):
        if kind in (CLIP, APKT, INDX):
            raise ContainerError(f"{name}: the index does not match the chunks (a {kind.decode()!r} chunk at byte "
                                 f"{offset}, before the first one indexed)")
        _note(name, found, sizes, offset, kind, chunk, minor)
    if TABL not in found:
        raise ContainerError(f"{name}: no {TABL.decode()!r} chunk")
    found[INDX] = [(index_at, payload)]
    return found, sizes


def _check_offsets(name: str, clips: list[int], audio: list[int], index_at: int) -> None:
    """Lazily opened: the indexed chunks (the first right after the metadata, as `_metadata_and_index` read)
    must lie in order, clips before audio, none overlapping, all before the index."""
    offsets = [*clips, *audio, index_at]
    if any(b - a < chunks.CHUNK_OVERHEAD for a, b in zip(offsets, offsets[1:])):
        raise ContainerError(f"{name}: the index does not match the chunks (offsets out of order or overlapping)")


def _sha256(f: IO[bytes]) -> str:
    sha = hashlib.sha256()
    f.seek(0)
    while block := f.read(1 << 20):
        sha.update(block)
    return sha.hexdigest()


def _bits(stored: dict[str, np.ndarray], kind: str, tables) -> dict[str, float]:
    out = {}
    for key in STREAMS:
        t = tables[key, kind]
        out[key] = t.bits(np.bincount(stored[key].reshape(-1) - t.lo, minlength=len(t.freqs)))
    return out
