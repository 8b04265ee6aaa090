"""`--range`: the syntax, the frames it selects, and `decode --range` reading only the clips it needs."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidtwin_cli.errors import UsageError
from vidtwin_cli.video.info import VideoInfo
from vidtwin_cli.video.span import Span, excerpt
from vidtwin_cli.vtw.container import open_vtw

from .conftest import without_preset_warning, write_test_video
from .test_cli_audio import audio_packets, write_video_with_audio

CFR = VideoInfo(32, 32, Fraction(25), Fraction(1, 25), 100, 4.0)  # 100 frames at 25 fps, frame k at k/25 s
VFR = VideoInfo(32, 32, Fraction(4), Fraction(1, 1000), 4, 1.0, pts=(0, 100, 500, 700))


@pytest.mark.parametrize(
    ("text", "info", "frames"),
    [
        ("2:3", CFR, (50, 75)),
        ("2.5:", CFR, (63, 100)),  # 2.5 s lies between frames 62 (2.48 s) and 63 (2.52 s): from the next one
        (":0.1", CFR, (0, 3)),  # frames at 0, 0.04, 0.08 s; the one at 0.12 s is past the end
        ("00:00:01.0-00:00:02", CFR, (25, 50)),
        ("0:01-0:02", CFR, (25, 50)),
        ("10f-20f", CFR, (10, 20)),
        ("10f:", CFR, (10, 100)),
        ("1-60f", CFR, (25, 60)),
        ("-4", CFR, (0, 100)),  # the end of the video is a valid end
        ("0.1:0.6", VFR, (1, 3)),  # timestamps 0.1 and 0.5 s
    ],
)  # fmt: skip
def test_a_range_selects_the_frames_shown_from_start_until_end(text, info, frames):
    assert Span.parse(text).frames(info, "v.vtw") == frames


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2.5", "must be"),
        ("1:2:3", "must be"),
        ("1-2-3", "must be"),
        ("a:b", "is not a time"),
        ("1:75-2:00", "59"),
        ("4:2", "must come after"),
        ("20f-10f", "must come after"),
        (":", "whole video"),
    ],
)  # fmt: skip
def test_bad_range_syntax_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        Span.parse(text)


@pytest.mark.parametrize(("text", "message"), [("3:5", "outside"), ("100f-", "outside"), ("2.01:2.02", "no frame")])
def test_a_range_outside_the_video_or_between_frames_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        Span.parse(text).frames(CFR, "v.vtw")


def test_excerpt_times_the_part_from_zero():
    part = excerpt(VFR, 1, 3)
    assert (part.frame_count, part.pts, part.duration) == (2, (0, 400), pytest.approx(0.6))
    assert excerpt(CFR, 50, 100).duration == pytest.approx(2.0)


# ---- decode --range through the CLI ----------------------------------------------------------------


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def times_of(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A 60-frame 25 fps clip (10 tiny clips of 6 frames), key clips every 3, and its full lossless decode."""
    from .conftest import run_cli

    d = tmp_path_factory.mktemp("range")
    src = write_test_video(d / "src.mp4", 32, 32, 60)
    assert run_cli(["encode", src, "-o", d / "a.vtw", "--model", "tiny", "--keyint", "3", "-q"]).exit_code == 0
    assert run_cli(["decode", d / "a.vtw", "-o", d / "full.mkv", "--codec", "ffv1", "-q"]).exit_code == 0
    return d / "a.vtw", frames_of(d / "full.mkv")


@pytest.mark.parametrize(
    ("text", "first", "stop"),
    [("1:1.6", 25, 40), ("00:00:00.4-00:00:01", 10, 25), ("13f-14f", 13, 14), ("2.2:", 55, 60), (":0.2", 0, 5)],
)
def test_decode_range_is_that_span_of_the_full_decode(cli, tmp_path, coded, text, first, stop):
    vtw, full = coded
    out = tmp_path / "part.mkv"
    result = cli(["decode", vtw, "-o", out, "--codec", "ffv1", "--range", text, "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == stop - first and report["range_frames"] == [first, stop]
    assert report["range_start_s"] == pytest.approx(first / 25)
    np.testing.assert_array_equal(frames_of(out), full[first:stop])
    assert times_of(out) == pytest.approx([k / 25 for k in range(stop - first)])  # timed from 0, at the source's rate


def _damage_clip(src: Path, dst: Path, clips: list[int]) -> None:
    with open_vtw(src) as reader:
        offsets = reader._clip_offsets
    data = bytearray(src.read_bytes())
    for k in clips:
        data[offsets[k] + 20] ^= 0xFF
    dst.write_bytes(bytes(data))


def test_decode_range_reads_only_from_the_previous_key_clip(cli, tmp_path, coded):
    """Clips 0-2 | 3-5 | 6-8 | 9 are key intervals. Frames 25-40 are in clips 4-6: decoding them reads
    clips 3 to 6 only, so damage in clips 0-2 and 7-9 goes unread; damage in key clip 3 is found."""
    vtw, full = coded
    damaged = tmp_path / "damaged.vtw"
    _damage_clip(vtw, damaged, [1, 2, 7, 9])
    whole = cli(["decode", damaged, "-o", tmp_path / "whole.mkv"])
    assert whole.exit_code == 2 and "checksum mismatch in the 'CLIP' chunk" in whole.stderr
    part = cli(["decode", damaged, "-o", tmp_path / "part.mkv", "--codec", "ffv1", "--range", "1:1.6"])
    assert part.exit_code == 0, part.stderr
    np.testing.assert_array_equal(frames_of(tmp_path / "part.mkv"), full[25:40])
    _damage_clip(vtw, damaged, [3])
    key = cli(["decode", damaged, "-o", tmp_path / "key.mkv", "--range", "1:1.6"])
    assert key.exit_code == 2 and "checksum mismatch in the 'CLIP' chunk" in key.stderr
    assert without_preset_warning(key.stderr).count("\n") == 1 and not (tmp_path / "key.mkv").exists()


@pytest.mark.parametrize(("text", "message"), [("3:4", "outside"), ("1:2:3", "must be"), ("2:1", "after")])
def test_a_bad_decode_range_is_one_line_exit_2_and_no_output(cli, tmp_path, coded, text, message):
    vtw, _ = coded
    result = cli(["decode", vtw, "-o", tmp_path / "x.mkv", "--range", text])
    assert result.exit_code == 2 and message in result.stderr and without_preset_warning(result.stderr).count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_decode_range_keeps_the_audio_of_that_span(cli, tmp_path):
    src = write_video_with_audio(tmp_path / "a.mp4", "aac", frames=12, fps=6)  # 2 s of tone
    assert cli(["encode", src, "-o", tmp_path / "a.vtw", "--model", "tiny", "-q"]).exit_code == 0
    assert cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "part.mkv", "--range", "0.5:1.5", "-q"]).exit_code == 0
    kept = audio_packets(tmp_path / "part.mkv")
    every = audio_packets(src)
    assert 0 < len(kept) < len(every) and all(p in every for p in kept)
    with av.open(str(tmp_path / "part.mkv")) as c:
        first = next(p for p in c.demux(audio=0) if p.size)
        assert abs(float(first.pts * first.time_base)) < 0.05  # the span's sound starts with its picture
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples == pytest.approx(48000, rel=0.1)  # about the range's one second


def test_swap_range_reads_the_structure_file_only_in_the_span(cli, tmp_path, coded):
    """With --range, A's clips outside the span are never read: damage there does not stop the swap."""
    vtw, _ = coded
    damaged = tmp_path / "a.vtw"
    _damage_clip(vtw, damaged, [1, 8])
    whole = cli(["swap", damaged, vtw, "-o", tmp_path / "whole.mkv"])
    assert whole.exit_code == 2 and "checksum mismatch in the 'CLIP' chunk" in whole.stderr
    part = cli(["swap", damaged, vtw, "-o", tmp_path / "part.mkv", "--range", "25f-40f", "--json"])
    assert part.exit_code == 0, part.stderr
    assert json.loads(part.stdout)["clips_swapped"] == 3 and len(frames_of(tmp_path / "part.mkv")) == 60


def test_lazily_opened_mutated_vtw2_files_read_cleanly_or_raise_container_error(tmp_path):
    """The parser path of a part read (`open_vtw(lazy=True)`, then clips in any order) under the fuzz
    mutations of format 2.0: every outcome is latents or one ContainerError line naming the file."""
    import random

    import torch

    from vidtwin_cli.errors import ContainerError

    from .test_vtw_fuzz import ITERATIONS, MUTATIONS_2, SEED, _coded_bases

    bases, rng = _coded_bases(tmp_path), random.Random(SEED + 1)
    path, outcomes = tmp_path / "lazy.vtw", set()
    for i in range(ITERATIONS):
        mutate = rng.choice(MUTATIONS_2)
        path.write_bytes(mutate(rng.choice(bases), rng))
        try:
            with open_vtw(path, lazy=True) as reader:
                order = list(range(reader.header.clips))
                rng.shuffle(order)
                clips = [reader.clip(k) for k in order]
                list(reader.audio_packets())
        except ContainerError as e:
            assert "\n" not in str(e) and str(e).startswith(str(path))
            outcomes.add("rejected")
            continue
        except Exception as e:  # anything else is a reader bug
            pytest.fail(f"seed {SEED + 1} iteration {i} ({mutate.__name__}): {type(e).__name__}: {e}")
        assert all(torch.isfinite(t).all() for c in clips for t in (c.structure, c.dynamics_x, c.dynamics_y))
        outcomes.add("read")
    assert outcomes == {"read", "rejected"}
