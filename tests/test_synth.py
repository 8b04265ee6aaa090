"""synth-motion: real video files, labels, and the learning-free direction classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidtwin_cli.media import labels_from_folders, read_labels
from vidtwin_cli.generation.synth import CLASSES, SynthSettings, classify_video, motion_direction, render
from vidtwin_cli.video.io import VideoReader


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """25 videos per class written with PyAV by the CLI (a seed no other test uses)."""
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("synth") / "held_out"
    r = run_cli(["datasets", "synth-motion", "--out", out, "--per-class", 25, "--seed", 12345, "--json"])
    assert r.exit_code == 0, r.stderr
    return out, json.loads(r.stdout)


def test_classifier_on_held_out_real_videos(held_out):
    out, summary = held_out
    rows = read_labels(out / "labels.csv")
    assert summary["videos"] == len(rows) == 100
    correct = sum(classify_video(path) == CLASSES.index(name) for path, name in rows)
    assert correct / len(rows) >= 0.98


def test_videos_have_the_requested_geometry(held_out):
    out, _ = held_out
    with VideoReader(out / "up" / "up_0000.mp4") as video:
        frames = list(video)
        info = video.info
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 64, 8, 8)
    assert len(frames) == 8


def test_labels_from_folders_matches_the_csv(held_out):
    out, _ = held_out
    assert sorted(labels_from_folders(out)) == sorted(read_labels(out / "labels.csv"))


def test_check_motion_command(held_out, cli):
    out, _ = held_out
    r = cli(["datasets", "check-motion", out, "--json"])
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["videos"] == 100 and result["accuracy"] >= 0.98
    assert sum(map(sum, result["confusion"])) == 100


def test_render_is_a_function_of_the_seed():
    s = SynthSettings(size=32, frames=5)
    a = render(2, s, np.random.default_rng([3, 2, 1]))
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render(2, s, np.random.default_rng([3, 2, 1])))
    assert not np.array_equal(a, render(2, s, np.random.default_rng([3, 2, 2])))


@pytest.mark.parametrize("label", range(len(CLASSES)), ids=CLASSES)
def test_classifier_on_rendered_frames(label):
    rng = np.random.default_rng(label)
    assert all(motion_direction(render(label, SynthSettings(), rng)) == label for _ in range(10))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["synth-motion", "--per-class", "0"], "--per-class"),
        (["synth-motion", "--size", "8"], "--size"),
        (["synth-motion", "--frames", "1"], "--frames"),
        (["check-motion", "MISSING"], "not a folder"),
    ],
    ids=["zero-per-class", "tiny-size", "one-frame", "missing-data"],
)
def test_bad_input(tmp_path, cli, args, fragment):
    out = tmp_path / "ds"
    args = [str(tmp_path / a) if a == "MISSING" else a for a in args]
    r = cli(["datasets", *args, *(["--out", out] if args[0] == "synth-motion" else [])])
    assert r.exit_code == 2
    assert fragment in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()


def test_check_motion_rejects_unknown_classes(tmp_path, cli, held_out):
    out, _ = held_out
    (tmp_path / "labels.csv").write_text(f"path,class\n{out / 'up' / 'up_0000.mp4'},sideways\n")
    r = cli(["datasets", "check-motion", tmp_path / "labels.csv"])
    assert r.exit_code == 2 and "sideways" in r.stderr


def test_refuses_an_existing_dataset(held_out, cli):
    out, _ = held_out
    r = cli(["datasets", "synth-motion", "--out", out, "--per-class", 1])
    assert r.exit_code == 2 and "already holds a dataset" in r.stderr
