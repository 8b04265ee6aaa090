"""`.vtw` latent files: write them, open and validate them, read their latents (docs/vtw-format.md).

A `.vtw` is a safetensors file: the latents of every clip and tile as tensors, and four metadata
strings (magic, version, a JSON header, a sha256 over the header and every tensor's bytes).
`VtwWriter` and `open_vtw` stream a few clips at a time, so memory does not grow with video
length; `write_vtw` and `read_vtw` do a whole file at once. Opening checks everything (sizes,
names, dtypes, shapes, checksum, finite values) before any latent is handed out; every failure is
one `ContainerError` line naming the file. Layout rules live in `header.py`, the
safetensors framing in `bytes.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from models import Latents

from vidtwin_cli import __version__
from vidtwin_cli.atomic import STDIO, atomic_output, check_writable, stdin_bytes
from vidtwin_cli.vtw.bytes import (
    LENGTH_FIELD,
    MAX_HEADER_BYTES,
    ST_DTYPES,
    canonical_order,
    check_spans,
    header_bytes,
    parse_header,
    tensor_bytes,
)
from vidtwin_cli.vtw.header import (
    CHANNEL_AXIS,
    ENTROPY,
    LATENT_DTYPES,
    MAGIC,
    LatentDtype,
    ModelRef,
    VtwHeader,
    check_identity,
    check_latent_dtype,
    check_latents,
    check_tensor_table,
)
from vidtwin_cli.vtw import chunks
from vidtwin_cli.vtw.coded import CodedReader, CodedStats, CodedWriter, EntropyCoding, open_coded
from vidtwin_cli.vtw.figures import VtwFigures
from vidtwin_cli.errors import ContainerError, InputError, RuntimeFailure, UsageError, one_line
from vidtwin_cli.video.audio import AudioTrack
from vidtwin_cli.video.info import Geometry, VideoInfo

__all__ = ["LATENT_DTYPES", "CodedReader", "CodedWriter", "EntropyCoding", "Inspection", "ModelRef", "VerifyReport",
           "VtwFigures", "VtwFile", "VtwHeader", "VtwReader", "VtwWriter", "inspect_vtw", "open_vtw", "read_vtw",
           "verify_vtw", "vtw_writer", "write_vtw"]

INT8_MAX = 127  # symmetric int8: q in [-127, 127]
CHUNK_BYTES = 1 << 20  # copy and hash granularity
CHECK_ROWS = 64  # rows per read while validating values on open (a few MiB for the release model)


@dataclass(frozen=True, eq=False)
class VtwFile:
    """A whole `.vtw` in memory: its header and float32 latents with `header.rows` rows."""

    header: VtwHeader
    latents: Latents  # structure (N, n_q, h_S, w_S, d_S), dynamics_x/y (N, d_D, T, n_D)

    def __post_init__(self) -> None:
        if check_latents(self.header.model.config, self.latents) != self.header.rows:
            raise ValueError(f"{self.latents.structure.shape[0]} latent rows, the header needs {self.header.rows}")


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify_vtw`: valid, or the one-line reason it is not."""

    file: str
    valid: bool
    error: str | None = None
    format_version: str | None = None
    sha256: str | None = None  # the verified checksum
    file_bytes: int | None = None
    clips: int | None = None
    rows: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The `vidtwin verify --json` object."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Inspection:
    """What `inspect_vtw` found: the header, the file's size, format version and checksum."""

    file: str
    format_version: str
    sha256: str
    header: VtwHeader
    file_bytes: int
    stats: CodedStats | None = None  # part sizes of an entropy-coded (2.0) file
    audio: list[AudioTrack] = dataclasses.field(default_factory=list)  # the source's audio tracks (2.0)

    @property
    def figures(self) -> VtwFigures:
        """Bytes per tensor or stream, bitrate, bits per value, compression."""
        return VtwFigures.of(self.header, self.file_bytes, self.stats)

    def to_json(self) -> dict[str, Any]:
        """The `vidtwin inspect --json` object: these facts, the header and figures, and the audio tracks."""
        audio = [{"codec": t.codec, "sample_rate": t.sample_rate, "layout": t.layout} for t in self.audio]
        return {"file": self.file, "format_version": self.format_version, "sha256": self.sha256,
                **self.figures.to_dict(), "audio": audio}


# --------------------------------------------------------------------------- writing


class VtwWriter:
    """Writes a `.vtw` a few clips at a time in constant memory; the file appears only on `finish`.

        with VtwWriter(out, model, geometry, "int8") as writer:
            for latents in batches:           # whole clips or not, in row order
                writer.add(latents)
            nbytes = writer.finish(video)     # the frame count is known only at the end of a stream

    Rows are spooled to anonymous temporary files; leaving the block without `finish` (an error,
    Ctrl-C) writes nothing. `dst` "-" is stdout; whoever creates the writer has checked that `dst`
    is writable (`atomic.check_writable`), before any work.
    """

    def __init__(self, dst: Path | str, model: ModelRef, geometry: Geometry, dtype: LatentDtype = "fp16", *,
                 sampled: bool = False, seed: int | None = None, provenance: dict[str, Any] | None = None,
                 tool: str = "vidtwin", tool_version: str = __version__) -> None:
        check_latent_dtype(dtype)
        self.dst, self.model, self.geometry, self.dtype = dst, model, geometry, dtype
        self._fields = {"sampled": sampled, "seed": seed, "provenance": provenance or {}, "tool": tool,
                        "tool_version": tool_version}
        self.rows = 0
        self.header: VtwHeader | None = None  # set by `finish`
        names = [*CHANNEL_AXIS, *(f"{key}_scale" for key in CHANNEL_AXIS if dtype == "int8")]
        self._spools: dict[str, IO[bytes]] = {key: tempfile.TemporaryFile() for key in names}

    def add(self, latents: Latents) -> None:
        """Append rows (float latents of any device/dtype, shapes as the model config says)."""
        rows = check_latents(self.model.config, latents)
        for key, axis in CHANNEL_AXIS.items():
            x = getattr(latents, key).detach().to("cpu", torch.float32)
            if not torch.isfinite(x).all():
                raise RuntimeFailure(f"refusing to write non-finite {key} latents")
            if self.dtype == "int8":
                q, scale = quantise_int8(x, axis)
                self._spools[key].write(tensor_bytes(q))
                self._spools[f"{key}_scale"].write(tensor_bytes(scale))
                continue
            stored = x.to(ST_DTYPES[LATENT_DTYPES[self.dtype]])
            if not torch.isfinite(stored).all():
                raise UsageError(f"{key} latents reach |x| = {x.abs().max().item():.3g}, beyond {self.dtype}; "
                                 "use --dtype bf16 or fp32")
            self._spools[key].write(tensor_bytes(stored))
        self.rows += rows

    def finish(self, video: VideoInfo) -> int:
        """Check the rows against the video, write the file atomically; returns its size in bytes."""
        tiles = self.geometry.tiles_per_clip
        if self.rows % tiles:
            raise ValueError(f"{self.rows} latent rows are not whole clips of {tiles} tiles")
        header = VtwHeader(self.model, video, self.geometry, self.rows // tiles, self.dtype, **self._fields)
        sources = self._spools
        if video.pts is not None:
            sources["pts"] = tempfile.TemporaryFile()
            sources["pts"].write(tensor_bytes(torch.tensor(video.pts, dtype=torch.int64)))
        text = header.to_json()
        checksum = hashlib.sha256(text.encode("utf-8"))
        for key in sorted(sources):
            for chunk in _chunks(sources[key]):
                checksum.update(chunk)
        metadata = {"magic": MAGIC, "version": "{}.{}".format(*header.version), "header": text,
                    "sha256": checksum.hexdigest()}
        layout = header.layout()
        head = header_bytes(layout, metadata)
        with atomic_output(self.dst) as f:
            f.write(head)
            for key in canonical_order(layout):
                for chunk in _chunks(sources[key]):
                    f.write(chunk)
        self.close()
        self.header = header
        return len(head) + sum(math.prod(shape) * ST_DTYPES[dt].itemsize for dt, shape in layout.values())

    def close(self) -> None:
        """Drop the spooled rows (after `finish`, or to abandon the file)."""
        for spool in self._spools.values():
            spool.close()

    def __enter__(self) -> VtwWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Storage = str | EntropyCoding  # a raw latent dtype (a 1.x file) or entropy coding (a 2.0 file)


def vtw_writer(dst: Path | str, model: ModelRef, geometry: Geometry, storage: Storage,
               **fields: Any) -> VtwWriter | CodedWriter:
    """The writer for `storage`: `CodedWriter` (2.0) for EntropyCoding, `VtwWriter` (1.x) for a raw dtype."""
    if isinstance(storage, EntropyCoding):
        return CodedWriter(dst, model, geometry, storage, **fields)
    return VtwWriter(dst, model, geometry, storage, **fields)


def write_vtw(dst: Path | str, vtw: VtwFile) -> int:
    """Write a whole `VtwFile` atomically to `dst` ("-" = stdout); returns the bytes written.

    Entropy-coded files are written again with their step and key interval."""
    check_writable(Path(dst))
    h = vtw.header
    storage = EntropyCoding(step=h.step, keyint=h.keyint) if h.dtype == ENTROPY else h.dtype
    with vtw_writer(dst, h.model, h.geometry, storage, sampled=h.sampled, seed=h.seed, provenance=h.provenance,
                    tool=h.tool, tool_version=h.tool_version) as writer:
        writer.add(vtw.latents)
        return writer.finish(h.video)


def quantise_int8(x: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one float32 scale per (row, channel): x ≈ q · scale, |error| ≤ scale / 2.

    x: (N, ...) float32 with its channel on `axis`. Returns q (same shape, int8), scale (N, C) float32.
    """
    moved = x.movedim(axis, 1)  # (N, C, ...)
    scale = (moved.abs().flatten(2).amax(2) / INT8_MAX).to(torch.float32)  # (N, C)
    divisor = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel stays 0
    q = torch.round(moved / _expand(divisor, moved)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q.movedim(1, axis).contiguous(), scale.contiguous()


def dequantise_int8(q: torch.Tensor, scale: torch.Tensor, axis: int) -> torch.Tensor:
    """Inverse of `quantise_int8`: float32 q · scale."""
    moved = q.movedim(axis, 1).to(torch.float32)
    return (moved * _expand(scale, moved)).movedim(1, axis).contiguous()


def _expand(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return scale.reshape(*scale.shape, *([1] * (like.dim() - 2)))


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    f.seek(0)
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


# --------------------------------------------------------------------------- reading


class VtwReader:
    """An open, completely validated `.vtw`; latents are read a few rows at a time (float32, CPU).

    Use `open_vtw(src)`, preferably as a context manager.
    """

    def __init__(self, name: str, header: VtwHeader, file: IO[bytes], spans: dict[str, tuple[int, str, tuple[int, ...]]],
                 stack: contextlib.ExitStack, file_bytes: int, version: str, sha256: str) -> None:
        self.name, self.header, self.file_bytes, self.version, self.sha256 = name, header, file_bytes, version, sha256
        self._file, self._spans, self._stack = file, spans, stack

    def _tensor_rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        # plain reads at validated offsets: a memory map would make RSS grow with the file
        offset, dtype, shape = self._spans[key]
        row_bytes = math.prod(shape[1:]) * ST_DTYPES[dtype].itemsize
        self._file.seek(offset + start * row_bytes)
        data = bytearray(self._file.read((stop - start) * row_bytes))
        if len(data) != (stop - start) * row_bytes:
            raise ContainerError(f"{self.name}: truncated while reading {key} (the file shrank)")
        return torch.frombuffer(data, dtype=ST_DTYPES[dtype]).reshape(stop - start, *shape[1:])

    def read_rows(self, start: int, stop: int) -> Latents:
        """Rows [start, stop) of all three latent tensors, float32."""
        parts = {}
        for key, axis in CHANNEL_AXIS.items():
            stored = self._tensor_rows(key, start, stop)
            if self.header.dtype == "int8":
                scale = self._tensor_rows(f"{key}_scale", start, stop)
                if not (torch.isfinite(scale).all() and (scale >= 0).all()):
                    raise ContainerError(f"{self.name}: {key}_scale holds negative or non-finite scales")
                parts[key] = dequantise_int8(stored, scale, axis)
            else:
                parts[key] = stored.to(torch.float32)
            if not torch.isfinite(parts[key]).all():
                raise ContainerError(f"{self.name}: {key} holds non-finite latent values")
        return Latents(**parts)

    def clip(self, index: int) -> Latents:
        """All tiles of clip `index`: tiles_per_clip rows, tile row-major."""
        if not 0 <= index < self.header.clips:
            raise IndexError(f"clip {index} of {self.header.clips}")
        tiles = self.header.tiles_per_clip
        return self.read_rows(index * tiles, (index + 1) * tiles)

    def iter_clips(self) -> Iterator[Latents]:
        for index in range(self.header.clips):
            yield self.clip(index)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> VtwReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_vtw(src: Path | str, lazy: bool = False) -> VtwReader | CodedReader:
    """Open and validate a `.vtw` 1.x or 2.x ("-": stdin, spooled to a temporary file first).

    Raises InputError when the path is missing, a directory or unreadable, ContainerError when the
    bytes are not a valid `.vtw` (docs/vtw-format.md §8; all values are checked before returning).
    `lazy` (for reading a part): a 2.x file's clips are checked as they are read, and only those
    read are (its framing, metadata and index are checked on open); a 1.x file, whose one
    checksum covers every byte, is read and checked whole either way.
    """
    name = _display_name(src)
    stack = contextlib.ExitStack()
    try:
        if str(src) == STDIO:  # anonymous: nothing is left behind, even by a killed process
            f = stack.enter_context(tempfile.TemporaryFile(prefix="vidtwin-stdin-"))
            shutil.copyfileobj(stdin_bytes(), f, CHUNK_BYTES)
        else:
            path = Path(src)
            if path.is_dir():
                raise InputError(f"{path}: is a directory, not a .vtw file")
            if not path.exists():
                raise InputError(f"{path}: no such file")
            try:
                f = stack.enter_context(open(path, "rb"))
            except OSError as e:
                raise InputError(f"{name}: cannot read ({e.strerror or e})") from e
        reader = _open(name, f, stack, lazy)
        if isinstance(reader, CodedReader):  # open_coded decoded every clip already, or checks each on reading
            return reader
        for start in range(0, reader.header.rows, CHECK_ROWS):  # every value, before any is used
            reader.read_rows(start, min(start + CHECK_ROWS, reader.header.rows))
        return reader
    except BaseException:
        stack.close()
        raise


def _display_name(src: Path | str) -> str:
    return "<stdin>" if str(src) == STDIO else str(src)


def _open(name: str, f: IO[bytes], stack: contextlib.ExitStack, lazy: bool) -> VtwReader | CodedReader:
    try:
        f.flush()  # a stdin spool may still hold bytes in its write buffer, which fstat does not see
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
        head = f.read(LENGTH_FIELD + MAX_HEADER_BYTES)
        if chunks.is_v2(head):
            return open_coded(name, f, size, stack, lazy)
        meta, entries, start = parse_header(name, head, size)
        minor = check_identity(name, meta)
        check_spans(name, entries, size - start)
        checksum = hashlib.sha256(meta["header"].encode("utf-8"))
        for key in sorted(entries):
            begin, end = entries[key]["data_offsets"]
            f.seek(start + begin)
            while begin < end:
                chunk = f.read(min(CHUNK_BYTES, end - begin))
                if not chunk:
                    raise ContainerError(f"{name}: truncated while reading (the file shrank)")
                checksum.update(chunk)
                begin += len(chunk)
    except OSError as e:
        raise InputError(f"{name}: cannot read ({e.strerror or e})") from e
    if checksum.hexdigest() != meta["sha256"]:
        raise ContainerError(f"{name}: checksum mismatch, the file is corrupt "
                             f"(stored sha256 {meta['sha256'][:16]}…, computed {checksum.hexdigest()[:16]}…)")
    try:
        header = VtwHeader.from_json(meta["header"])
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:  # InputError is a ValueError
        raise ContainerError(f"{name}: bad header: {one_line(e)}") from e
    if header.dtype == ENTROPY:
        raise ContainerError(f"{name}: bad header: {ENTROPY} latents in a 1.x file (they need format 2.0)")
    layout = check_tensor_table(name, header, entries, minor)
    spans = {key: (start + entries[key]["data_offsets"][0], *layout[key]) for key in layout}
    reader = VtwReader(name, header, f, spans, stack, size, meta["version"], checksum.hexdigest())
    if "pts" in layout:
        pts = reader._tensor_rows("pts", 0, header.video.frame_count).tolist()
        try:
            reader.header = dataclasses.replace(header, video=VideoInfo.from_dict({**header.video.to_dict(), "pts": pts}))
        except ValueError as e:
            raise ContainerError(f"{name}: {one_line(e)}") from e
    return reader


def read_vtw(src: Path | str) -> VtwFile:
    """Read and validate a whole `.vtw` ("-" = stdin); see `open_vtw` for errors."""
    with open_vtw(src) as reader:
        return VtwFile(reader.header, reader.read_rows(0, reader.header.rows))


def verify_vtw(src: Path | str) -> VerifyReport:
    """Every check `open_vtw` makes, as a verdict: ContainerError becomes `valid=False`.

    A missing, unreadable or directory path still raises InputError: that is no verdict on a `.vtw`.
    """
    try:
        reader = open_vtw(src)
    except ContainerError as e:
        return VerifyReport(_display_name(src), False, str(e))
    with reader:
        h = reader.header
        return VerifyReport(reader.name, True, None, reader.version, reader.sha256, reader.file_bytes, h.clips, h.rows)


def inspect_vtw(src: Path | str) -> Inspection:
    """What a `.vtw` holds (after every check `open_vtw` makes); `to_json()` adds the figures."""
    with open_vtw(src) as reader:
        coded = isinstance(reader, CodedReader)
        return Inspection(reader.name, reader.version, reader.sha256, reader.header, reader.file_bytes,
                          reader.stats if coded else None, reader.audio if coded else [])
