"""Habits a video tool's users bring (ffmpeg's -y/-n, readable --help, folders made on demand), via the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import write_test_video

TINY = ["--model", "tiny"]


@pytest.mark.parametrize("command", [["encode"], ["decode"], ["swap"], ["batch", "encode"], ["generate"], []])
def test_help_shows_flags_as_flags(cli, command):
    result = cli([*command, "--help"])
    assert result.exit_code == 0
    assert "--help" in result.text and "<bool>" not in result.text


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
