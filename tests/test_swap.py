"""`vidtwin swap` of clips of different sizes, rates and lengths, from .vtw files or straight from video."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from vidtwin_cli.vtw.container import read_vtw

from .conftest import write_test_video
from .test_cli_codec import encode, probe

NTSC = Fraction(30000, 1001)


@pytest.fixture
def clips(tmp_path):
    """A: 48×40 (2×2 tiles of the tiny model), 17 frames at 25 fps; B: 64×32 (1×2 tiles), 12 frames at 29.97."""
    a = write_test_video(tmp_path / "a.mp4", 48, 40, 17)
    b = write_test_video(tmp_path / "b.mp4", 64, 32, 12, fps=NTSC)
    return a, b


def test_differently_sized_vtw_files_swap_onto_the_structures_size(cli, tmp_path, clips):
    a, b = clips
    encode(cli, a, tmp_path / "a.vtw")
    encode(cli, b, tmp_path / "b.vtw")
    result = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.mp4", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 12
    assert probe(tmp_path / "ab.mp4")[:4] == (12, 48, 40, NTSC)  # A's picture, B's timeline

    latents = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.vtw"])
    assert latents.exit_code == 0, latents.stderr
    ab, va = read_vtw(tmp_path / "ab.vtw").header, read_vtw(tmp_path / "a.vtw").header
    assert ab.geometry == va.geometry and (ab.video.frame_count, ab.video.fps) == (12, NTSC)


def test_video_files_swap_directly(cli, tmp_path, clips):
    a, b = clips
    result = cli(["swap", a, b, "-o", tmp_path / "ab.mp4", "--model", "tiny", "--json"])
    assert result.exit_code == 0, result.stderr
    assert probe(tmp_path / "ab.mp4")[:4] == (12, 48, 40, NTSC)
    encode(cli, a, tmp_path / "a.vtw")
    mixed = cli(["swap", tmp_path / "a.vtw", b, "-o", tmp_path / "mixed.mp4"])  # the .vtw's model encodes B
    assert mixed.exit_code == 0, mixed.stderr
    assert probe(tmp_path / "mixed.mp4")[:3] == (12, 48, 40)


def test_structure_follows_the_clock_of_the_dynamics(cli, tmp_path):
    """A at 6 fps (2 clips of 6 frames: 0-1 s, 1-2 s) under B at 12 fps (4 clips starting 0, 0.5, 1, 1.5 s)."""
    step = ("--step", "0.05")  # one step for both: the swapped .vtw keeps B's, so A's values stay exact
    encode(cli, write_test_video(tmp_path / "a.mp4", 32, 32, 12, fps=Fraction(6)), tmp_path / "a.vtw", *step)
    encode(cli, write_test_video(tmp_path / "b.mp4", 32, 32, 24, fps=Fraction(12)), tmp_path / "b.vtw", *step)
    result = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.vtw"])
    assert result.exit_code == 0, result.stderr
    a, ab = read_vtw(tmp_path / "a.vtw").latents.structure, read_vtw(tmp_path / "ab.vtw").latents.structure
    assert [next(k for k in range(2) if (ab[i] == a[k]).all()) for i in range(4)] == [0, 0, 1, 1]


def test_swap_of_a_non_video_is_one_line(cli, tmp_path, clips):
    a, _ = clips
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video " * 50)
    result = cli(["swap", a, junk, "-o", tmp_path / "ab.mp4", "--model", "tiny"])
    lines = result.stderr.strip().splitlines()  # the tiny preset's warning first, then the error
    assert result.exit_code == 2 and "junk.mp4" in lines[-1] and lines[-1].startswith("error:"), result.stderr
    assert not (tmp_path / "ab.mp4").exists()
