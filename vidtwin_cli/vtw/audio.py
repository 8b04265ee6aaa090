"""How a `.vtw` 2.0 keeps the source's audio: track descriptions (AUDS) and compressed packets (APKT).

Packets are stored as the source's demuxer gave them (no re-encode), so decode can mux them back
(`video/audio.py` does the PyAV side; docs/vtw-format.md §15 the bytes).
"""

from __future__ import annotations

import json
import struct
from fractions import Fraction

from vidtwin_cli.video.audio import AudioPacket, AudioTrack
from vidtwin_cli.vtw.bytes import strict_json

PACKET = struct.Struct("<qqqBI")  # pts, dts, duration (time_base units), flags, size
BATCH = struct.Struct("<HI")  # track, packet count
NO_TIME = -(1 << 63)  # pts/dts unknown (ffmpeg's AV_NOPTS_VALUE)
KEYFRAME = 1
MAX_TRACKS = 16
MAX_EXTRADATA = 1 << 16


def pack_tracks(tracks: list[AudioTrack]) -> bytes:
    return json.dumps([{"codec": t.codec, "sample_rate": t.sample_rate, "layout": t.layout,
                        "time_base": [t.time_base.numerator, t.time_base.denominator],
                        "extradata": t.extradata.hex()} for t in tracks], separators=(",", ":")).encode()


def unpack_tracks(data: bytes) -> list[AudioTrack]:
    """Track descriptions from untrusted bytes (ValueError/TypeError on anything malformed)."""
    items = strict_json(data.decode("utf-8"))
    if type(items) is not list or not 1 <= len(items) <= MAX_TRACKS:
        raise ValueError(f"audio tracks must be a list of 1..{MAX_TRACKS}")
    tracks = []
    for d in items:
        if type(d) is not dict or type(d.get("codec")) is not str or type(d.get("layout")) is not str:
            raise ValueError("an audio track lacks codec or layout")
        rate, tb, extra = d.get("sample_rate"), d.get("time_base"), d.get("extradata")
        if type(rate) is not int or not 0 < rate <= 1 << 20:
            raise ValueError(f"audio sample_rate {rate!r} is implausible")
        if type(tb) is not list or len(tb) != 2 or not all(type(v) is int and 0 < v < 1 << 31 for v in tb):
            raise ValueError(f"audio time_base {tb!r} is not two positive integers")
        if type(extra) is not str or len(extra) > 2 * MAX_EXTRADATA:
            raise ValueError("audio extradata is not a short hex string")
        tracks.append(AudioTrack(d["codec"][:64], rate, d["layout"][:64], Fraction(*tb), bytes.fromhex(extra)))
    return tracks


def pack_packets(track: int, packets: list[AudioPacket]) -> bytes:
    out = bytearray(BATCH.pack(track, len(packets)))
    for p in packets:
        out += PACKET.pack(NO_TIME if p.pts is None else p.pts, NO_TIME if p.dts is None else p.dts,
                           p.duration, KEYFRAME if p.keyframe else 0, len(p.data))
        out += p.data
    return bytes(out)


def unpack_packets(data: bytes, tracks: int) -> tuple[int, list[AudioPacket]]:
    """(track, packets) of one APKT payload (ValueError when malformed or naming a missing track)."""
    if len(data) < BATCH.size:
        raise ValueError("audio chunk too short")
    track, count = BATCH.unpack_from(data)
    if track >= tracks:
        raise ValueError(f"audio packets for track {track}, the file has {tracks}")
    pos, packets = BATCH.size, []
    for _ in range(count):
        if pos + PACKET.size > len(data):
            raise ValueError("audio chunk ends mid-packet")
        pts, dts, duration, flags, size = PACKET.unpack_from(data, pos)
        pos += PACKET.size
        if pos + size > len(data) or duration < 0:
            raise ValueError("audio packet runs past its chunk or has a negative duration")
        packets.append(AudioPacket(None if pts == NO_TIME else pts, None if dts == NO_TIME else dts, duration,
                                   bool(flags & KEYFRAME), data[pos : pos + size]))
        pos += size
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} stray bytes after the audio packets")
    return track, packets
