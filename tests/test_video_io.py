"""Streaming video I/O on real files: the fetched clips and videos generated with PyAV."""

from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.video.info import VideoInfo
from vidtwin_cli.video.io import VideoReader, VideoWriter, iter_clips

from .conftest import cuts_inside_packets, render_frame, write_test_video

VFR_PTS = [0, 1000, 1500, 4000, 4100, 7000, 9000]  # in 1/10000 s: irregular frame intervals


def read_all(src: Path | str, format: str | None = None) -> tuple[list[np.ndarray], VideoInfo]:
    with VideoReader(src, format) as video:
        frames = list(video)
        return frames, video.info


def write_all(dst: Path, frames: list[np.ndarray], info: VideoInfo, **kwargs) -> Path:
    with VideoWriter(dst, info, info.width, info.height, **kwargs) as out:
        for frame in frames:
            out.write(frame)
    return dst


def times(info: VideoInfo) -> list[Fraction]:
    return [p * info.time_base for p in info.pts]


def mean_abs_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(np.int16) - y).mean() for x, y in zip(a, b)]))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name, size, frames, fps", [
    ("carphone_pristine.mp4", (176, 144), 120, Fraction(30000, 1001)),
    ("bikes.mp4", (640, 272), 250, Fraction(25)),
    ("cityCC0.mpg", (720, 405), 190, Fraction(25)),  # MPEG-2 program stream, odd height, pts start at 0.54 s
], ids=["carphone-ntsc-rate", "bikes", "city-mpeg2-odd-height"])
def test_real_clip_round_trip_keeps_size_rate_and_count(media_dir, tmp_path, name, size, frames, fps):
    source, info = read_all(media_dir / name)
    assert (info.width, info.height, info.frame_count, info.fps, info.pts) == (*size, frames, fps, None)
    assert info.duration == pytest.approx(frames / fps)
    back, info2 = read_all(write_all(tmp_path / "out.mp4", source, info))
    assert (info2.width, info2.height, info2.frame_count, info2.fps, info2.duration) == (
        info.width, info.height, info.frame_count, info.fps, info.duration)
    assert all(f.shape == (size[1], size[0], 3) and f.dtype == np.uint8 for f in back)
    assert mean_abs_error(source, back) < 4  # CRF 18: close to the source, colours not shifted


@pytest.mark.parametrize("width, height, frames", [(33, 17, 17), (32, 32, 1), (1, 1, 1), (48, 40, 17), (17, 35, 2)])
def test_generated_round_trip_exact_geometry_and_count(make_video, tmp_path, width, height, frames):
    src = make_video(tmp_path / "in.mp4", width, height, frames)
    source, info = read_all(src)
    assert (info.width, info.height, info.frame_count, info.fps) == (width, height, frames, 25)
    back, info2 = read_all(write_all(tmp_path / "out.mp4", source, info))
    assert info2 == info  # same size, rate, count, duration, time base and codec
    assert len(back) == frames and back[0].shape == (height, width, 3)
    assert mean_abs_error(source, back) < 4


@pytest.mark.parametrize("container", ["mkv", "nut", "mov"])
def test_constant_rate_survives_other_containers(make_video, tmp_path, container):
    source, info = read_all(make_video(tmp_path / "in.mp4", 32, 24, 17, fps=Fraction(30000, 1001)))
    _, info2 = read_all(write_all(tmp_path / f"out.{container}", source, info))
    assert (info2.frame_count, info2.fps, info2.duration, info2.pts) == (17, Fraction(30000, 1001), info.duration, None)


def test_variable_frame_rate_keeps_every_timestamp(make_video, tmp_path):
    src = make_video(tmp_path / "vfr.mp4", 32, 24, len(VFR_PTS), pts=VFR_PTS, time_base=Fraction(1, 10000))
    source, info = read_all(src)
    assert info.pts is not None and times(info) == [Fraction(p, 10000) for p in VFR_PTS]
    back, info2 = read_all(write_all(tmp_path / "out.mp4", source, info))
    assert times(info2) == times(info)  # exact, whatever time base the muxer picked
    assert (info2.frame_count, info2.fps, info2.duration) == (info.frame_count, info.fps, info.duration)
    assert float(info.fps) == pytest.approx(info.frame_count / info.duration)  # VFR: the exact mean rate


def test_variable_frame_rate_in_matroska_is_millisecond_exact(make_video, tmp_path):
    source, info = read_all(make_video(tmp_path / "vfr.mp4", 32, 24, 7, pts=VFR_PTS, time_base=Fraction(1, 10000)))
    _, info2 = read_all(write_all(tmp_path / "out.mkv", source, info))
    assert info2.time_base == Fraction(1, 1000)
    assert times(info2) == [Fraction(round(t * 1000), 1000) for t in times(info)]


def test_real_avi_with_dropped_frames_is_variable_rate(media_dir, tmp_path):
    """tree.avi (opencv sample, fetched with --all) stores 444 slots but only 68 real frames."""
    path = media_dir / "tree.avi"
    if not path.is_file():
        pytest.skip("tree.avi comes with `scripts/fetch_media.py --all`")
    source, info = read_all(path)
    assert info.frame_count == 68 and info.pts is not None
    _, info2 = read_all(write_all(tmp_path / "out.mp4", source, info))
    assert times(info2) == times(info) and info2.duration == info.duration


@pytest.mark.parametrize("rotation, turns", [(-90, 3), (90, 1), (180, 2)], ids=["phone-portrait", "ccw", "upside-down"])
def test_display_rotation_is_applied_so_frames_come_upright(make_video, tmp_path, rotation, turns):
    """Phones store portrait video sideways with a display rotation; frames are read as a player shows them."""
    src = make_video(tmp_path / "rotated.mp4", width=64, height=48, frames=3, rotation=rotation)
    frames, info = read_all(src)
    shown = [np.rot90(render_frame(i, 64, 48), turns) for i in range(3)]  # counterclockwise quarter turns
    assert (info.width, info.height) == (shown[0].shape[1], shown[0].shape[0])
    assert all(f.flags.c_contiguous for f in frames)
    turned_wrong = [np.rot90(f, 2) for f in shown]  # the other orientation of the same shape
    assert mean_abs_error(frames, shown) < 8 < 40 < mean_abs_error(frames, turned_wrong)  # lossy x264: ~5 vs ~70


def test_a_rotation_that_is_not_a_quarter_turn_is_ignored_with_one_warning_line(make_video, tmp_path, cli):
    src = make_video(tmp_path / "tilted.mp4", width=64, height=48, frames=3, rotation=45)
    frames, info = read_all(src)
    assert (info.width, info.height) == (64, 48) and len(frames) == 3
    result = cli(["encode", src, "-o", tmp_path / "tilted.vtw", "--model", "tiny", "--quiet"])
    assert result.exit_code == 0, result.stderr
    rotation = [line for line in result.stderr.splitlines() if "rotation" in line]
    assert rotation == [f"warning: {src}: display rotation 45° is not a multiple of 90°; frames are used as stored"]


@pytest.mark.parametrize("rotation, shown", [(None, Fraction(4, 3)), (-90, Fraction(3, 4))], ids=["hdv", "turned"])
def test_anamorphic_video_keeps_its_pixel_shape(make_video, tmp_path, rotation, shown):
    """HDV-style 4:3 pixels survive the round trip; a quarter turn makes them 3:4."""
    src = make_video(tmp_path / "anamorphic.mp4", width=48, height=36, frames=2, rotation=rotation,
                     sample_aspect=Fraction(4, 3))
    frames, info = read_all(src)
    assert info.sample_aspect == shown
    _, back = read_all(write_all(tmp_path / "out.mkv", frames, info))
    assert back.sample_aspect == shown
    _, square = read_all(make_video(tmp_path / "square.mp4", frames=1))
    assert square.sample_aspect == 1 and "sample_aspect" not in square.to_dict()


def test_header_facts_come_before_decoding(sample_video):
    with VideoReader(sample_video) as video:
        assert (video.width, video.height, video.fps, video.estimated_frames) == (48, 40, 25, 17)
        with pytest.raises(RuntimeError, match="after all frames"):
            video.info
        first = next(iter(video))
        assert first.shape == (40, 48, 3) and first.flags.c_contiguous


# --------------------------------------------------------------------------- clips


@pytest.mark.parametrize("frames, length, valid", [(17, 6, [6, 6, 5]), (12, 6, [6, 6]), (1, 6, [1]), (5, 1, [1] * 5)])
def test_clips_pad_the_tail_with_the_last_frame(frames, length, valid):
    video = [np.full((3, 5, 3), i, np.uint8) for i in range(frames)]
    clips = list(iter_clips(iter(video), length))
    assert [v for _, v in clips] == valid
    assert all(c.shape == (length, 3, 5, 3) and c.dtype == np.uint8 for c, _ in clips)
    flat = np.concatenate([c[:v] for c, v in clips])
    assert flat[:, 0, 0, 0].tolist() == list(range(frames))  # every real frame once, in order
    last, n = clips[-1]
    assert (last[n:] == frames - 1).all()  # padding repeats the last real frame


def test_clips_of_nothing_and_bad_length():
    assert list(iter_clips(iter([]), 4)) == []
    with pytest.raises(ValueError):
        list(iter_clips(iter([np.zeros((2, 2, 3), np.uint8)]), 0))


def test_clips_from_a_real_video(sample_video):
    with VideoReader(sample_video) as video:
        clips = list(iter_clips(video, 6))
        assert video.info.frame_count == 17
    assert [v for _, v in clips] == [6, 6, 5] and clips[0][0].shape == (6, 40, 48, 3)


# --------------------------------------------------------------------------- pipes

PIPE_WRITE = """
import sys
from vidtwin_cli.video.io import VideoReader, VideoWriter
with VideoReader(sys.argv[1]) as video:
    frames = list(video)
with VideoWriter("-", video.info, video.width, video.height, format=sys.argv[2]) as out:
    for f in frames:
        out.write(f)
"""
PIPE_READ = """
import sys
from vidtwin_cli.video.io import VideoReader
with VideoReader("-", format=sys.argv[1]) as video:
    n = sum(1 for _ in video)
i = video.info
print(n, i.width, i.height, i.fps.numerator, i.fps.denominator, i.duration)
"""


@pytest.mark.parametrize("format", ["nut", "matroska", "mp4"])
def test_stdout_to_stdin_through_a_real_pipe(make_video, tmp_path, format):
    src = make_video(tmp_path / "in.mp4", 33, 17, 17, fps=Fraction(30000, 1001))
    writer = subprocess.Popen([sys.executable, "-c", PIPE_WRITE, str(src), format], stdout=subprocess.PIPE)
    reader = subprocess.run([sys.executable, "-c", PIPE_READ, format], stdin=writer.stdout, capture_output=True,
                            text=True, timeout=60)
    writer.stdout.close()
    assert writer.wait(timeout=60) == 0 and reader.returncode == 0, reader.stderr
    *counts, duration = reader.stdout.split()
    assert counts == ["17", "33", "17", "30000", "1001"] and float(duration) == pytest.approx(17 * 1001 / 30000)


def test_stdin_reads_a_file_redirect_of_any_mp4(sample_video):
    done = subprocess.run([sys.executable, "-c", PIPE_READ, "mp4"], stdin=open(sample_video, "rb"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.split()[:3] == ["17", "48", "40"]


def test_stdin_needs_a_format_and_stdout_a_pipe_format():
    with pytest.raises(UsageError, match="format"):
        VideoReader("-")
    info = VideoInfo(8, 8, Fraction(25), Fraction(1, 25), 1, 0.04)
    with pytest.raises(UsageError, match="nut"):
        VideoWriter("-", info, 8, 8, format="avi")
    with pytest.raises(UsageError, match="unknown container format"):
        VideoReader("-", format="no-such-format")


# --------------------------------------------------------------------------- bad input


def _text(tmp: Path, make_video) -> Path:
    (tmp / "notes.txt").write_text("just some text, not a video\n" * 40)
    return tmp / "notes.txt"


def _noise(tmp: Path, make_video) -> Path:
    (tmp / "noise.mkv").write_bytes(random.Random(0).randbytes(5000))
    return tmp / "noise.mkv"


def _empty(tmp: Path, make_video) -> Path:
    (tmp / "empty.mp4").write_bytes(b"")
    return tmp / "empty.mp4"


def _zero_frames(tmp: Path, make_video) -> Path:
    """A valid Matroska file that declares a video stream but only carries audio packets."""
    path = tmp / "zero.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 32
        audio = container.add_stream("pcm_s16le", rate=8000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 512), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 512
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def _audio_only(tmp: Path, make_video) -> Path:
    path = tmp / "sound.wav"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def _truncated(tmp: Path, make_video) -> Path:
    """An ordinary mp4 (index at the end) cut short: the index is gone."""
    data = make_video(tmp / "whole.mp4", 32, 24, 17).read_bytes()
    (tmp / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    return tmp / "cut.mp4"


def _truncated_faststart(tmp: Path, make_video) -> Path:
    """A 'fast start' mp4 (index first) cut short: the demuxer would stop quietly, the index says why."""
    whole = make_video(tmp / "whole.mp4", 32, 24, 17)
    with av.open(str(whole)) as src, av.open(str(tmp / "fast.mp4"), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = (tmp / "fast.mp4").read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    (tmp / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    return tmp / "cut.mp4"


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp, _: tmp / "missing.mp4", "no such file"),
    (lambda tmp, _: tmp, "is a directory"),
    (_text, "is a text file, not a video"),
    (_noise, "not a video file PyAV can read"),
    (_empty, "not a video file PyAV can read"),
    (_zero_frames, "has no video frames"),
    (_audio_only, "has no video stream"),
    (_truncated, "or truncated"),
    (_truncated_faststart, "truncated (its index points past the end"),
], ids=["missing", "directory", "text", "noise", "empty", "zero-frames", "audio-only", "truncated",
        "truncated-faststart"])
def test_bad_input_is_one_clean_line_naming_the_file(tmp_path, make_video, make, fragment):
    path = make(tmp_path, make_video)
    with pytest.raises(InputError) as caught:
        read_all(path)
    message = str(caught.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_damaged_files_give_frames_or_a_clean_error(make_video, tmp_path, caplog):
    """Mutated mp4s (bytes flipped, cut, overwritten) never escape as anything but InputError, and frames
    read from a damaged one come with a warning (they once came without a word)."""
    data = make_video(tmp_path / "ok.mp4", 32, 24, 17).read_bytes()
    rng, outcomes = random.Random(4), {"frames": 0, "error": 0}
    for k in range(90):
        mutated = bytearray(data)
        if k % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        elif k % 3 == 1:
            mutated = mutated[: rng.randrange(len(mutated))]
        else:
            at = rng.randrange(len(mutated))
            mutated[at:at + 16] = rng.randbytes(16)
        (tmp_path / "bad.mp4").write_bytes(bytes(mutated))
        try:
            read_all(tmp_path / "bad.mp4")
            outcomes["frames"] += 1
        except InputError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
    warned = [r.message for r in caplog.records if "damaged or cut short" in r.message]
    assert outcomes["frames"] and outcomes["error"] and warned, outcomes
    assert all(r.endswith("frames were decoded, and are kept") for r in warned)


def test_strict_makes_damage_an_error(make_video, tmp_path):
    """A file cut mid-packet: with `strict` reading it ends in an InputError naming the frames decoded."""
    data = make_video(tmp_path / "ok.nut", 32, 24, 40, format="nut").read_bytes()
    (tmp_path / "cut.nut").write_bytes(data[: cuts_inside_packets(tmp_path / "ok.nut", 3)[1]])
    with pytest.raises(InputError, match=r"cut.nut: damaged or cut short \(.*\); \d+ frames were decoded \(--strict\)"):
        with VideoReader(tmp_path / "cut.nut", strict=True) as video:
            list(video)


def test_every_cut_inside_a_packet_is_reported(make_video, tmp_path):
    """Neither the NUT demuxer nor the H.264 decoder says a word about some short final packets (P-frames
    of a few dozen bytes decode "fine"); the reader notices the packet reaching the end of the input."""
    whole = make_video(tmp_path / "ok.nut", 64, 48, 120, format="nut")
    with VideoReader(whole, strict=True) as video:
        assert sum(1 for _ in video) == 120  # complete: its index follows the last packet
    data = whole.read_bytes()
    for cut in cuts_inside_packets(whole, 24)[1:]:  # the first: not a single frame, another error
        (tmp_path / "cut.nut").write_bytes(data[:cut])
        with pytest.raises(InputError, match=r"damaged or cut short \(.*\); \d+ frames were decoded"):
            with VideoReader(tmp_path / "cut.nut", strict=True) as video:
                list(video)


# --------------------------------------------------------------------------- writer contract


def test_odd_sizes_use_444_and_even_sizes_420(tmp_path):
    for (w, h), pix in (((33, 17), "yuv444p"), ((32, 18), "yuv420p")):
        info = VideoInfo(w, h, Fraction(25), Fraction(1, 25), 1, 0.04)
        assert VideoWriter(tmp_path / "x.mp4", info, w, h).pix_fmt == pix
    assert VideoWriter(tmp_path / "x.mp4", info, 33, 17, codec="libx264rgb").pix_fmt == "rgb24"
    with pytest.raises(UsageError, match="cannot store 33x17"):
        VideoWriter(tmp_path / "x.mp4", info, 33, 17, codec="mpeg4")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"codec": "no-such-codec"}, "unknown video encoder"),
    ({"codec": "aac"}, "not a video encoder"),
    ({"codec": "ffv1", "crf": 10}, "no CRF"),
    ({"crf": 99}, "outside 0..63"),
    ({"format": "bogus"}, "unknown container format"),
    ({"codec": "libx265"}, "narrower than 64 px"),  # instead of a crash inside x265
])
def test_bad_writer_options_are_usage_errors(tmp_path, kwargs, fragment):
    info = VideoInfo(8, 8, Fraction(25), Fraction(1, 25), 1, 0.04)
    with pytest.raises(UsageError, match=fragment):
        VideoWriter(tmp_path / "x.mp4", info, 8, 8, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_container_for_codec_or_suffix_leaves_nothing(tmp_path):
    info = VideoInfo(8, 8, Fraction(25), Fraction(1, 25), 1, 0.04)
    for name, fragment in (("x.webm", "does not support"), ("x.unknownsuffix", "no container format")):
        with pytest.raises(UsageError, match=fragment):
            with VideoWriter(tmp_path / name, info, 8, 8):
                pass
    assert list(tmp_path.iterdir()) == []


def test_writes_are_atomic(tmp_path):
    info = VideoInfo(16, 16, Fraction(25), Fraction(1, 25), 3, 0.12)
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "a.mp4", info, 16, 16) as out:
            out.write(frame)
            raise KeyboardInterrupt
    with pytest.raises(ValueError, match="1 frames written, the video has 3"):
        with VideoWriter(tmp_path / "b.mp4", info, 16, 16) as out:
            out.write(frame)
    with pytest.raises(ValueError, match=r"expected a \(16, 16, 3\) uint8 frame"):
        with VideoWriter(tmp_path / "c.mp4", info, 16, 16) as out:
            out.write(np.zeros((16, 17, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []  # no output and no temporary left behind
    with VideoWriter(tmp_path / "d.mp4", info, 16, 16) as out:
        for _ in range(3):
            out.write(frame)
        with pytest.raises(ValueError, match="more than the 3 frames"):
            out.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["d.mp4"]


def test_reads_an_mpeg_program_stream_whose_packets_have_no_byte_position(tmp_path):
    """PyAV gives MPEG-PS (.mpg) packets pos None; the reader must still decode every frame."""
    path = write_test_video(tmp_path / "clip.mpg", 48, 40, frames=12, codec="mpeg4")
    with VideoReader(path) as video:
        frames = list(video)
    assert len(frames) == 12 and frames[0].shape == (40, 48, 3)
