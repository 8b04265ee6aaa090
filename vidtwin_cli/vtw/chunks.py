"""The byte level of a `.vtw` 2.0: a signature, then checksummed chunks, then the index trailer.

Nothing here knows what a chunk means (`coded.py` does). Each chunk is a 4-byte ASCII type, a
u32 little-endian payload size, the payload and a CRC-32 over type, size and payload, so damage
is found and located chunk by chunk (docs/vtw-format.md §11).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import IO

from vidtwin_cli.errors import ContainerError

SIGNATURE = b"\x89VTW\r\n\x1a\n"  # PNG-style: 8-bit, CR/LF and EOF damage all change it; a 1.x file starts with a u64 < 2^20
VERSION_2 = (2, 0)
PREFIX_BYTES = len(SIGNATURE) + 4  # signature + u16 major + u16 minor
CHUNK_HEAD = struct.Struct("<4sI")  # type, payload size
CRC = struct.Struct("<I")
TRAILER = struct.Struct("<Q8s")  # offset of the INDX chunk, end marker
END_MARK = b"vtw-end\n"
MAX_CHUNK_BYTES = 1 << 28  # a clip of the release model codes to KiBs; larger is hostile
CHUNK_OVERHEAD = CHUNK_HEAD.size + CRC.size


def is_v2(prefix: bytes) -> bool:
    """Whether a file starting with these bytes claims to be a `.vtw` 2.x."""
    return prefix[: len(SIGNATURE)] == SIGNATURE


def prefix_bytes(version: tuple[int, int] = VERSION_2) -> bytes:
    return SIGNATURE + struct.pack("<HH", *version)


def chunk_bytes(kind: bytes, payload: bytes) -> bytes:
    """One chunk: type, size, payload, CRC-32 of the three."""
    head = CHUNK_HEAD.pack(kind, len(payload))
    return head + payload + CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def trailer_bytes(index_offset: int) -> bytes:
    return TRAILER.pack(index_offset, END_MARK)


def read_version(name: str, f: IO[bytes], size: int) -> tuple[int, int]:
    """The (major, minor) after the signature (the caller has seen the signature)."""
    if size < PREFIX_BYTES + TRAILER.size:
        raise ContainerError(f"{name}: truncated, {size} bytes is too short for a .vtw 2")
    f.seek(len(SIGNATURE))
    major, minor = struct.unpack("<HH", f.read(4))
    return major, minor


def read_trailer(name: str, f: IO[bytes], size: int) -> int:
    """Offset of the INDX chunk, from the last 16 bytes."""
    f.seek(size - TRAILER.size)
    offset, mark = TRAILER.unpack(f.read(TRAILER.size))
    if mark != END_MARK:
        raise ContainerError(f"{name}: truncated or damaged at the end (no index trailer)")
    if not PREFIX_BYTES <= offset <= size - TRAILER.size - CHUNK_OVERHEAD:
        raise ContainerError(f"{name}: damaged trailer (index offset {offset} outside the file)")
    return offset


def read_chunk(name: str, f: IO[bytes], offset: int, end: int) -> tuple[bytes, bytes, int]:
    """(type, payload, next offset) of the chunk at `offset`, its CRC checked; the data must end by `end`."""
    f.seek(offset)
    head = f.read(CHUNK_HEAD.size)
    if len(head) < CHUNK_HEAD.size or offset + CHUNK_OVERHEAD > end:
        raise ContainerError(f"{name}: truncated at byte {offset} (a chunk header is cut off)")
    kind, n = CHUNK_HEAD.unpack(head)
    label = kind.decode("ascii", "backslashreplace")
    if n > MAX_CHUNK_BYTES or offset + CHUNK_OVERHEAD + n > end:
        raise ContainerError(f"{name}: truncated or damaged {label!r} chunk at byte {offset} "
                             f"(claims {n} bytes, {end - offset - CHUNK_OVERHEAD} available)")
    payload = f.read(n)
    (crc,) = CRC.unpack(f.read(CRC.size))
    if len(payload) != n or crc != zlib.crc32(payload, zlib.crc32(head)):
        raise ContainerError(f"{name}: checksum mismatch in the {label!r} chunk at byte {offset}, the file is damaged there")
    return kind, payload, offset + CHUNK_OVERHEAD + n


def walk(name: str, f: IO[bytes], start: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, type, payload) of every chunk from `start` to `end` (the trailer excluded)."""
    offset = start
    while offset < end:
        kind, payload, following = read_chunk(name, f, offset, end)
        yield offset, kind, payload
        offset = following
