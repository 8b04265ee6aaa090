"""Habits a video tool's users bring (ffmpeg's -y/-n, readable --help, folders made on demand), via the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidtwin_cli.vtw.container import read_vtw

from .conftest import REPO, render_frame, write_test_video

TINY = ["--model", "tiny"]


@pytest.mark.parametrize("command", [["encode"], ["decode"], ["swap"], ["batch", "encode"], ["generate"], []])
def test_help_shows_flags_as_flags(cli, command):
    result = cli([*command, "--help"])
    assert result.exit_code == 0
    assert "--help" in result.text and "<bool>" not in result.text


# --help for every command and group, in a fresh interpreter; prints what heavy libraries that loaded.
_HELP_EVERYWHERE = """
import contextlib, io, sys
from vidtwin_cli.app import build_app, main

def paths(command, prefix):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

for argv in paths(build_app(), []):
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        assert main([*argv, "--help"]) == 0 and "Usage" in shown.getvalue(), argv
heavy = ("torch", "av", "numpy", "models", "safetensors", "huggingface_hub", "constriction", "PIL")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_help_loads_no_torch_av_or_numpy():
    """`vidtwin --help` and every `vidtwin <command> --help` answer at once: importing torch alone takes
    seconds, so the commands load it (and PyAV, numpy, the models) only when they run."""
    done = subprocess.run([sys.executable, "-c", _HELP_EVERYWHERE], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_test_video(tmp_path / "clip.mp4", 32, 32, 6)


def test_existing_outputs_need_y_and_n_keeps_them(cli, tmp_path, clip):
    out = tmp_path / "clip.vtw"
    assert cli(["encode", clip, "-o", out, *TINY]).exit_code == 0
    out.write_bytes(b"precious")
    refused = cli(["encode", clip, "-o", out, *TINY])
    assert refused.exit_code == 2 and "already exists" in refused.stderr and "-y" in refused.stderr
    assert refused.stderr.count("\n") == 1 and out.read_bytes() == b"precious"

    kept = cli(["encode", clip, "-o", out, *TINY, "-n"])
    assert kept.exit_code == 0 and "left as it is" in kept.stderr and out.read_bytes() == b"precious"

    replaced = cli(["encode", clip, "-o", out, *TINY, "-y"])
    assert replaced.exit_code == 0 and out.read_bytes()[:8] != b"precious"

    video = tmp_path / "clip.out.mp4"
    video.write_bytes(b"precious")
    assert cli(["decode", out, "-o", video]).exit_code == 2 and video.read_bytes() == b"precious"
    assert cli(["decode", out, "-o", video, "--overwrite"]).exit_code == 0 and video.stat().st_size > 8
    both = cli(["decode", out, "-o", video, "-y", "-n"])
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_n_skips_only_the_existing_outputs_of_several(cli, tmp_path, clip):
    other = write_test_video(tmp_path / "other.mp4", 32, 32, 6)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.vtw").write_bytes(b"precious")
    result = cli(["encode", clip, other, "--out-dir", out, *TINY, "-n", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kept"] == [str(out / "clip.vtw")] and [Path(r["output"]).name for r in summary["results"]] == ["other.vtw"]
    assert (out / "clip.vtw").read_bytes() == b"precious"


def test_out_dir_is_created_and_the_summary_compares_with_the_input_file(cli, tmp_path, clip):
    out = tmp_path / "new" / "latents"
    result = cli(["encode", clip, "--out-dir", out, *TINY])
    assert result.exit_code == 0, result.stderr
    assert (out / "clip.vtw").is_file()
    assert "than raw RGB" in result.stderr and "than the input file" in result.stderr
    info = cli(["encode", clip, "-o", tmp_path / "x.vtw", *TINY, "--json"])
    assert json.loads(info.stdout)["input_bytes"] == clip.stat().st_size


def test_demo_writes_into_a_new_folder_and_says_where(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(["demo", "--json", "--quiet"])
    assert result.exit_code == 0, result.stderr
    folder = Path(json.loads(result.stdout)["folder"])
    assert sorted(p.name for p in folder.iterdir()) == ["sample.decoded.mp4", "sample.vtw"]
    assert list(tmp_path.iterdir()) == [] and not folder.samefile(os.getcwd())


def _with_audio(path: Path) -> Path:
    """A 32×32, 6-frame H.264 video with an AAC sine track, written with PyAV."""
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=25)
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        audio = c.add_stream("aac", rate=44100)
        for i in range(6):
            c.mux(video.encode(av.VideoFrame.from_ndarray(render_frame(i, 32, 32), format="rgb24")))
        tone = (0.2 * np.sin(np.arange(44100 // 4) * 2 * np.pi * 440 / 44100)).astype(np.float32)[None]
        for start in range(0, tone.shape[1] - 1024, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, start
            c.mux(audio.encode(frame))
        c.mux(video.encode())
        c.mux(audio.encode())
    return path


def test_warnings_say_what_is_lost(cli, tmp_path, clip):
    silent = cli(["encode", clip, "-o", tmp_path / "a.vtw"])  # the bundled model, no audio, whole picture
    assert silent.exit_code == 0 and "warning:" not in silent.stderr, silent.stderr

    loud = _with_audio(tmp_path / "loud.mp4")
    kept = cli(["encode", loud, "-o", tmp_path / "b.vtw", "--json"])  # .vtw 2.0 keeps the audio: nothing to say
    assert kept.exit_code == 0 and "warning:" not in kept.stderr and json.loads(kept.stdout)["audio_tracks"] == 1
    for extra in (["--no-audio"], ["--frames", "3"], ["--dtype", "fp16"]):
        dropped = cli(["encode", loud, "-o", tmp_path / "b.vtw", "-y", *extra])
        assert dropped.exit_code == 0 and dropped.stderr.count("warning:") == 1 and "audio" in dropped.stderr, extra

    wide = write_test_video(tmp_path / "wide.mp4", 96, 64, 6)
    cropped = cli(["encode", wide, "-o", tmp_path / "c.vtw", "--fit", "crop"])
    assert cropped.exit_code == 0 and "--fit crop" in cropped.stderr and "64x64" in cropped.stderr, cropped.stderr

    untrained = cli(["encode", clip, "-o", tmp_path / "d.vtw", *TINY])
    assert untrained.exit_code == 0 and "untrained preset" in untrained.stderr
    assert json.loads(cli(["info", *TINY, "--json"]).stdout)["trained"] is False
    assert json.loads(cli(["info", "--json"]).stdout)["trained"] is True
    shown = cli(["inspect", tmp_path / "d.vtw"])
    assert shown.exit_code == 0 and "untrained preset" in shown.stderr


def test_start_duration_and_frames_cut_like_ffmpeg(cli, tmp_path):
    src = write_test_video(tmp_path / "long.mp4", 32, 32, 48, fps=Fraction(24))  # 2 s
    cut = cli(["encode", src, "-o", tmp_path / "cut.vtw", *TINY, "-ss", "0.5", "-t", "1", "--json"])
    assert cut.exit_code == 0, cut.stderr
    assert json.loads(cut.stdout)["frames"] == 24  # frames 12..35
    first = cli(["encode", src, "-o", tmp_path / "first.vtw", *TINY, "--frames", "5", "--json"])
    assert json.loads(first.stdout)["frames"] == 5
    assert cli(["decode", tmp_path / "cut.vtw", "-o", tmp_path / "cut.mp4"]).exit_code == 0
    with av.open(str(tmp_path / "cut.mp4")) as c:
        assert (len(list(c.decode(video=0))), c.streams.video[0].average_rate) == (24, 24)
    late = cli(["encode", src, "-o", tmp_path / "late.vtw", *TINY, "--start", "5"])
    assert late.exit_code == 2 and "--start" in late.stderr and not (tmp_path / "late.vtw").exists()
    bad = cli(["encode", src, "-o", tmp_path / "bad.vtw", *TINY, "--duration", "0"])
    assert bad.exit_code == 2 and "--duration" in bad.stderr


def test_batch_encode_trims_every_file(cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        write_test_video(src / f"{name}.mp4", 32, 32, 20)
    result = cli(["batch", "encode", src, "-o", tmp_path / "out", *TINY, "--threads", "1", "--frames", "7", "--json"])
    assert result.exit_code == 0, result.stderr
    for name in ("a", "b"):
        assert read_vtw(tmp_path / "out" / f"{name}.vtw").header.video.frame_count == 7
