"""The source's audio, carried without re-encoding: its packets demuxed on encode, muxed back on decode.

A `.vtw` 2.0 stores what `read_audio` returns (vtw/audio.py packs it); `VideoWriter.add_audio` and
`mux_audio` (below, used by `video/io.py`) put it beside the decoded video when the output
container can hold the codec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidtwin_cli.errors import InputError

BATCH_PACKETS = 256  # packets per stored chunk: about 5 s of AAC, a few KiB to a few hundred


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of the source: enough to mux its packets into a new container."""

    codec: str  # ffmpeg codec name, e.g. "aac", "opus"
    sample_rate: int
    layout: str  # ffmpeg channel layout name, e.g. "stereo"
    time_base: Fraction  # unit of the packets' pts, dts and duration
    extradata: bytes = b""  # codec setup (AudioSpecificConfig, OpusHead...)


@dataclass(frozen=True)
class AudioPacket:
    """One compressed audio packet; times in its track's time_base (None: unknown)."""

    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    data: bytes


def read_audio(src: Path | str) -> tuple[list[AudioTrack], Iterator[tuple[int, list[AudioPacket]]]]:
    """The audio tracks of a media file and a generator of (track, packets) batches, in file order.

    Reads the file a second time (video decoding skips audio), demuxing only: nothing is decoded.
    """
    try:
        with av.open(str(src)) as container:
            tracks = [_track(s) for s in container.streams.audio]
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"{src}: cannot read its audio ({e})") from e
    return tracks, _packets(src, len(tracks))


def _track(stream: av.audio.stream.AudioStream) -> AudioTrack:
    ctx = stream.codec_context
    return AudioTrack(ctx.name, ctx.sample_rate, ctx.layout.name, stream.time_base, bytes(ctx.extradata or b""))


def _packets(src: Path | str, count: int) -> Iterator[tuple[int, list[AudioPacket]]]:
    if not count:
        return
    try:
        with av.open(str(src)) as container:
            streams = list(container.streams.audio)
            batches: list[list[AudioPacket]] = [[] for _ in streams]
            for packet in container.demux(*streams):
                if not packet.size:  # the demuxer's end-of-stream marker
                    continue
                track = streams.index(packet.stream)
                batches[track].append(AudioPacket(packet.pts, packet.dts, packet.duration or 0, packet.is_keyframe,
                                                  bytes(packet)))
                if len(batches[track]) == BATCH_PACKETS:
                    yield track, batches[track]
                    batches[track] = []
            for track, batch in enumerate(batches):
                if batch:
                    yield track, batch
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"{src}: cannot read its audio ({e})") from e


def add_tracks(container: av.container.OutputContainer, tracks: list[AudioTrack]) -> tuple[list, list[str]]:
    """Output streams for `tracks` (None where the container cannot hold the codec) and the codecs it refused."""
    streams, refused = [], []
    for track in tracks:
        try:
            stream = container.add_stream(track.codec, rate=track.sample_rate)
            stream.codec_context.layout = track.layout
            stream.codec_context.extradata = track.extradata or None
            stream.time_base = track.time_base
        except (ValueError, av.FFmpegError):  # "'avi' format does not support 'opus' codec", unknown codec
            streams.append(None)
            refused.append(track.codec)
            continue
        streams.append(stream)
    return streams, refused


def mux_packets(container: av.container.OutputContainer, stream, track: AudioTrack,
                packets: list[AudioPacket]) -> None:  # fmt: skip
    """Mux stored packets into `stream` unchanged (times rescaled from the track's time base)."""
    for p in packets:
        packet = av.Packet(p.data)
        packet.pts, packet.dts, packet.duration, packet.time_base = p.pts, p.dts, p.duration, track.time_base
        packet.is_keyframe = p.keyframe
        packet.stream = stream
        container.mux(packet)
