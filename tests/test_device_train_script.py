"""scripts/device_train.sh, the stage a lent GPU machine runs, run here on the CPU as its `train` phase runs
there: a real process, real (generated) clips under the names it expects, real training steps from the
bundled weights, and the fp16 file it hands back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidtwin_cli.bench.lpips_weights import lpips_weights_path
from vidtwin_cli.codec.weights import resolve_model

from .conftest import write_test_video

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_train.sh"
CLIPS = ("carphone_pristine.mp4", "bigbuckbunny.mp4", "cityCC0.mpg", "vtest.avi", "tree.avi", "cup.mp4",
         "world.mp4", "dancer.avi", "jwpIntro.mp4", "psychopy_default.mp4", "bikes.mp4")  # fmt: skip


def run_phase(phase: str, device_dir: Path, out: Path, **env: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEVICE_DIR": str(device_dir), "OUT": str(out), "PYTHON": sys.executable,
           "RUN": str(device_dir / "run"), "DEVICE": "cpu", "PRECISION": "fp32", "WORKERS": "0", "CACHE_MB": "0",
           "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in env.items()}}  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT), phase], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def device_dir(tmp_path_factory, media_dir) -> Path:
    """What `pack` leaves in .device/data, with small generated clips under the real names."""
    root = tmp_path_factory.mktemp("device")
    data = root / "data"
    data.mkdir()
    for n, name in enumerate(CLIPS):
        write_test_video(data / name, 72, 64, frames=12 + n, codec="mpeg4" if name.endswith((".avi", ".mpg")) else "libx264")
    lpips = lpips_weights_path("alex", cache_dir=root / "cache", media_dir=media_dir)
    (data / "lpips-alex.safetensors").write_bytes(lpips.read_bytes())
    (root / "site").mkdir()  # what `install` leaves (the packages are already importable here)
    return root


def test_train_phase_hands_back_fp16_weights_trained_from_the_bundled_file(device_dir, tmp_path):
    done = run_phase("train", device_dir, tmp_path / "out", BATCH=1, STEPS=2, VAL_EVERY=0, TRAIN_S=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trainer exit status 0" in done.stdout
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"model-fp16.safetensors", "metrics.jsonl", "config.json", "train.log"}
    back, bundled = resolve_model(str(out / "model-fp16.safetensors")), resolve_model()
    assert back.config == bundled.config
    changed = [k for k, v in back.model.state_dict().items() if not torch.equal(v, bundled.model.state_dict()[k])]
    assert changed, "two training steps left every weight as the bundled file has it"
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2
    assert json.loads((out / "config.json").read_text())["data"]["sample_fps"] == 1000  # stride 1, as encode cuts


def test_train_phase_without_the_install_phase_says_so(tmp_path):
    (tmp_path / "data").mkdir()
    done = run_phase("train", tmp_path, tmp_path / "out")
    assert done.returncode == 2 and "install call did not run on this machine" in done.stderr
    assert not (tmp_path / "out" / "model-fp16.safetensors").exists()


def test_unknown_phase_is_a_usage_error(tmp_path):
    done = run_phase("fly", tmp_path, tmp_path / "out")
    assert done.returncode == 2 and "usage:" in done.stderr
