"""The model card's measurement scripts, run as its reader runs them: scripts/heldout_cuts.py and
scripts/compare_models.py, in real processes on real (generated) videos and real model files."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from models import PRESETS
from vidtwin_cli.codec.weights import build_model, save_model

from .conftest import write_test_video

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_heldout_cuts_are_lossless_48_frame_copies_of_the_named_frames(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    sources = {"bikes.mp4": 150, "box.mp4": 200, "Megamind.avi": 80}  # each a few frames past its cut
    for name, count in sources.items():
        write_test_video(media / name, 32, 24, frames=count, codec="mpeg4" if name.endswith(".avi") else "libx264")
    done = run_script("heldout_cuts.py", "--media", media, "--dest", tmp_path / "cuts")
    assert done.returncode == 0, done.stderr
    for cut, (source, first) in {"bikes-48.mkv": ("bikes.mp4", 100), "box-48.mkv": ("box.mp4", 150),
                                 "megamind-48.mkv": ("Megamind.avi", 24)}.items():  # fmt: skip
        got, want = frames(tmp_path / "cuts" / cut), frames(media / source)[first:first + 48]
        assert len(got) == 48 and all(np.array_equal(a, b) for a, b in zip(got, want)), cut


def test_heldout_cuts_refuse_a_short_source_and_leave_no_cut(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_test_video(media / "bikes.mp4", 32, 24, frames=120)  # the cut needs frames 100-147
    done = run_script("heldout_cuts.py", "--media", media, "--dest", tmp_path / "cuts")
    assert done.returncode != 0 and "fewer than 148 frames" in done.stderr
    assert not (tmp_path / "cuts" / "bikes-48.mkv").exists()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = []
    torch.manual_seed(0)
    model = build_model(PRESETS["tiny"])
    for n in (0, 1):
        if n:  # a second model: every weight moved (a fresh init zeroes some output layers, so two would agree)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
        paths.append(folder / f"tiny-{n}.safetensors")
        save_model(paths[-1], model)
    return paths[0], paths[1]


def test_compare_models_scores_every_model_on_the_same_tiles(tmp_path, model_files):
    video = write_test_video(tmp_path / "v.mp4", 48, 40, frames=30)
    a, b = model_files
    done = run_script("compare_models.py", "--video", video, "--model", a, "--model", b, "--model", a,
                      "--clips", 3, "--json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["results"]
    first, other, again = row["models"]
    assert row["clips"] == 3 and first["delta_psnr"] == 0
    assert again["psnr"] == first["psnr"] and again["delta_psnr"] == 0  # same weights, same tiles: same figure
    assert other["psnr"] != first["psnr"] and other["delta_psnr"] == pytest.approx(other["psnr"] - first["psnr"], abs=0.002)
    assert other["sha256"] != first["sha256"]


def test_compare_models_refuses_models_that_cut_clips_differently(tmp_path, model_files):
    small = tmp_path / "small.safetensors"
    save_model(small, build_model(PRESETS["small"]))
    video = write_test_video(tmp_path / "v.mp4", 80, 72, frames=20)
    done = run_script("compare_models.py", "--video", video, "--model", model_files[0], "--model", small)
    assert done.returncode != 0 and "cut clips differently" in done.stderr
