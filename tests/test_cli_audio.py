"""The source's audio rides along in a `.vtw` 2.0 as its own compressed packets and comes back on decode."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from .conftest import without_preset_warning

RATE = 48000
FRAME = 960  # samples per audio frame, a size both AAC (1024 native, resampled by PyAV) and Opus accept


def write_video_with_audio(path: Path, audio_codec: str, frames: int = 12, fps: int = 12) -> Path:
    """A real 32×32 H.264 video with one second of a 440 Hz tone, written with PyAV."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE)
        audio.codec_context.layout = "stereo"
        t = np.arange(frames / fps * RATE) / RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        fmt = audio.codec_context.format.name
        for start in range(0, len(tone) - FRAME + 1, FRAME):
            chunk = tone[start : start + FRAME]
            samples = np.stack([chunk, chunk]) if fmt.endswith("p") else np.stack([chunk, chunk], 1).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32 if "flt" in fmt else np.int16), format=fmt,
                                               layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            out.mux(audio.encode(frame))
        out.mux(video.encode())
        out.mux(audio.encode())
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def test_audio_packets_survive_encode_and_decode_unchanged(cli, tmp_path):
    src = write_video_with_audio(tmp_path / "a.mp4", "aac")
    assert cli(["encode", src, "-o", tmp_path / "a.vtw", "--model", "tiny", "-q"]).exit_code == 0
    info = json.loads(cli(["inspect", tmp_path / "a.vtw", "--json"]).stdout)
    assert info["audio"] == [{"codec": "aac", "sample_rate": RATE, "layout": "stereo"}] and info["chunks"]["APKT"] > 0
    result = cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "back.mkv", "-q"])
    assert result.exit_code == 0 and without_preset_warning(result.stderr).splitlines() == []
    assert audio_packets(tmp_path / "back.mkv") == audio_packets(src)  # no re-encode: the same bytes
    with av.open(str(tmp_path / "back.mkv")) as c:
        assert sum(f.samples for f in c.decode(audio=0)) >= RATE * 0.9


def test_no_audio_leaves_it_out(cli, tmp_path):
    src = write_video_with_audio(tmp_path / "a.mp4", "aac")
    assert cli(["encode", src, "-o", tmp_path / "a.vtw", "--model", "tiny", "--no-audio", "-q"]).exit_code == 0
    assert json.loads(cli(["inspect", tmp_path / "a.vtw", "--json"]).stdout)["audio"] == []
    assert cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "back.mp4", "-q"]).exit_code == 0
    with av.open(str(tmp_path / "back.mp4")) as c:
        assert not c.streams.audio


@pytest.mark.parametrize("container", ["mkv", "avi"])
def test_a_container_that_cannot_hold_the_codec_gets_video_and_one_warning(cli, tmp_path, container):
    src = write_video_with_audio(tmp_path / "a.mkv", "libopus")
    assert cli(["encode", src, "-o", tmp_path / "a.vtw", "--model", "tiny", "-q"]).exit_code == 0
    result = cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / f"back.{container}", "--codec", "mpeg4", "-q"])
    assert result.exit_code == 0, result.stderr
    with av.open(str(tmp_path / f"back.{container}")) as c:
        kept = [s.codec_context.name for s in c.streams.audio]
    if container == "avi":  # AVI has no Opus mapping
        (line,) = without_preset_warning(result.stderr).splitlines()
        assert kept == [] and "opus" in line and line.startswith("warning:")
    else:
        assert kept == ["opus"] and without_preset_warning(result.stderr).splitlines() == []
        assert audio_packets(tmp_path / "back.mkv") == audio_packets(src)


def test_swap_carries_the_dynamics_audio(cli, tmp_path):
    src = write_video_with_audio(tmp_path / "a.mp4", "aac")
    assert cli(["encode", src, "-o", tmp_path / "a.vtw", "--model", "tiny", "-q"]).exit_code == 0
    for out in ("ab.mkv", "ab.vtw"):
        assert cli(["swap", tmp_path / "a.vtw", tmp_path / "a.vtw", "-o", tmp_path / out, "-q"]).exit_code == 0
    assert audio_packets(tmp_path / "ab.mkv") == audio_packets(src)
    assert json.loads(cli(["inspect", tmp_path / "ab.vtw", "--json"]).stdout)["audio"][0]["codec"] == "aac"
