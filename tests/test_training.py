"""`vidtwin train ae`: real steps on real video files, exact resume, Ctrl-C, DDP with 2 processes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidtwin_cli.bench.lpips_weights import CKPT_NAMES, load_lpips
from vidtwin_cli.codec.runtime import cpu_has_native_bf16
from vidtwin_cli.training.ae_step import AutoencoderTask, fresh_model, quantised, reconstruction_scores, to_uint8_frames
from vidtwin_cli.bench.metrics import psnr
from vidtwin_cli.training.config import parse_set, read_config_file, resolve_config
from vidtwin_cli.media import list_videos
from vidtwin_cli.training.data import ClipDataset, probe_videos
from vidtwin_cli.training.distributed import DistContext
from vidtwin_cli.training.loop import TrainingInterrupted, warmup_cosine
from vidtwin_cli.training.ae_run import TrainRequest, train_autoencoder
from vidtwin_cli.codec.weights import read_model_file
from vidtwin_cli.vtw.entropy import STREAMS, dequantise, latent_sigma, quantise, step_for_quality

from .conftest import REPO, write_test_video

VOLATILE = {"time", "steps_per_s"}  # wall-clock fields of a metrics record


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """A folder of two real H.264 clips of different sizes and rates, one in a subfolder."""
    root = tmp_path_factory.mktemp("videos")
    write_test_video(root / "a.mp4", width=48, height=40, frames=30)
    (root / "sub").mkdir()
    write_test_video(root / "sub" / "b.mp4", width=40, height=36, frames=24, fps=Fraction(30))
    return root


@pytest.fixture(scope="module")
def alex_ckpt(media_dir: Path) -> Path:
    path = media_dir / "lpips" / CKPT_NAMES["alex"]
    if not path.is_file():
        pytest.fail(f"LPIPS weights missing: {path}; run `python scripts/fetch_media.py`")
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Two OpenMP threads on 2 shared, busy cores can be 20× slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _request(out: Path, videos: Path, lpips: Path, **overrides) -> TrainRequest:
    base = {"preset": "tiny", "data.train": [str(videos)], "steps": 6, "objective.disc_start": 2, "seed": 3}
    return TrainRequest(out, overrides={**base, **overrides}, device="cpu", lpips_weights=lpips)


def _train_records(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records if r["split"] == "train"]


def test_a_few_real_steps_lower_the_loss_on_a_fixed_batch(videos, alex_ckpt):
    config = resolve_config({"preset": "tiny"}, {"objective.disc_start": 6, "optim.warmup_steps": 2})
    dataset = ClipDataset(probe_videos(list_videos([str(videos)])), config.data, 6, 32, seed=0)
    batch = torch.stack([dataset[0], dataset[1]])  # (2, 3, 6, 32, 32) from the real files
    task = AutoencoderTask(config, fresh_model(config), load_lpips("alex", alex_ckpt), DistContext())
    logs = [task.train_step(batch, step) for step in range(12)]
    assert "d_loss" in logs[-1] and "d_weight" in logs[-1]  # the GAN ran for the last steps
    assert logs[-1]["nll"] < 0.8 * logs[0]["nll"]
    assert logs[-1]["l1"] < logs[0]["l1"]


def test_quantised_training_decodes_what_a_vtw_at_that_quality_holds(videos, alex_ckpt):
    """`quantise_quality`: the decoder is given exactly the codec's symbols · step, and the encoder still learns."""
    config = resolve_config({"preset": "tiny"}, {"quantise_quality": 9, "objective.disc_start": 100})
    dataset = ClipDataset(probe_videos(list_videos([str(videos)])), config.data, 6, 32, seed=0)
    clips = torch.stack([dataset[0], dataset[1]])
    model = fresh_model(config).eval()
    with torch.no_grad():
        latents = model.encode(clips)
        step = step_for_quality(9, latent_sigma(latents))
        stored = dequantise(quantise(latents, step), step)  # what a .vtw at --quality 9 holds
        rounded = quantised(latents, 9)
    assert rounded.structure.float().std() > 0
    for key in STREAMS:
        torch.testing.assert_close(getattr(rounded, key), getattr(stored, key), rtol=0, atol=1e-6)
        ref, test = to_uint8_frames(clips), to_uint8_frames(model.decode(stored))
    expected = np.mean([psnr(a, b) for a, b in zip(ref, test)])
    assert reconstruction_scores(model, clips, 2, quality=9)["psnr"] == pytest.approx(expected, abs=1e-6)  # one batch: one σ

    task = AutoencoderTask(config, fresh_model(config), load_lpips("alex", alex_ckpt), DistContext())
    first_encoder_layer = next(task.model.encoder.parameters()).detach().clone()
    logs = [task.train_step(clips, step) for step in range(8)]
    assert logs[-1]["l1"] < logs[0]["l1"]
    assert not torch.equal(next(task.model.encoder.parameters()), first_encoder_layer)  # gradients pass the rounding


@pytest.mark.slow
def test_interrupt_then_resume_repeats_the_uninterrupted_run(tmp_path, videos, alex_ckpt):
    straight = tmp_path / "straight"
    result = train_autoencoder(_request(straight, videos, alex_ckpt))
    assert result is not None and result.steps == 6 and result.model == str(straight / "model.safetensors")

    def ctrl_c_at_step_3(step: int, total: int, logs: dict) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal through the real handler

    resumed = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted):  # one DataLoader worker here: workers must not change the data
        train_autoencoder(_request(resumed, videos, alex_ckpt, **{"data.num_workers": 1}), progress=ctrl_c_at_step_3)
    assert (resumed / "checkpoints" / "latest").read_text().strip() == "step-00000003"
    assert not (resumed / "model.safetensors").exists()
    again = _request(resumed, videos, alex_ckpt)
    again.resume = True
    train_autoencoder(again)

    a, b = _train_records(straight), _train_records(resumed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6] and "d_loss" in b[-1]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key, value in ra.items():
            expected = pytest.approx(value, rel=1e-6, abs=1e-6) if isinstance(value, float) else value
            assert rb[key] == expected, (ra["step"], key)
    wa, wb = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_model_file_loads_as_a_model_and_records_training(tmp_path, videos, alex_ckpt, cli):
    out = tmp_path / "run"
    result = cli(["train", "ae", "--preset", "tiny", "--data", videos, "--val", videos / "a.mp4", "--steps", 2,
                  "--out", out, "--device", "cpu", "--lpips-weights", alex_ckpt, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and set(summary["val"]) >= {"psnr", "ssim", "lpips"}
    info = cli(["info", "--model", out / "model.safetensors", "--json"])
    assert info.exit_code == 0, info.stderr
    _, _, meta = read_model_file(out / "model.safetensors")
    training = json.loads(meta["training"])
    assert meta["training_step"] == "2" and training["config"]["preset"] == "tiny"
    assert sorted(Path(p).name for p in training["train_files"]) == ["a.mp4", "b.mp4"]
    val = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert val and val[-1]["step"] == 2 and 0 < val[-1]["ssim"] <= 1


def test_corrupt_and_truncated_videos_are_skipped_with_a_warning(tmp_path, videos, alex_ckpt, cli):
    data = tmp_path / "data"
    data.mkdir()
    good = (videos / "a.mp4").read_bytes()
    (data / "good.mp4").write_bytes(good)
    (data / "garbage.mp4").write_bytes(os.urandom(3000))
    (data / "truncated.mp4").write_bytes(good[: len(good) // 3])
    result = cli(["train", "ae", "--preset", "tiny", "--data", data, "--steps", 2, "--out", tmp_path / "run",
                  "--device", "cpu", "--lpips-weights", alex_ckpt])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "warning: skipping" in result.stderr
    assert "garbage.mp4" in result.stderr and "truncated.mp4" in result.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--steps", "2"], "no training videos"),
        (["--data", "missing-folder", "--steps", "2"], "no such video"),
        (["--data", "{garbage}", "--steps", "2"], "none of the training videos"),
        (["--data", "{videos}", "--set", "optim.nonsense=1"], "unknown config field"),
        (["--data", "{videos}", "--set", "optim.lr=-1"], ">= 0"),
        (["--data", "{videos}", "--set", "quantise_quality=13"], "quantise_quality must be 0 (off) or a --quality in 1..12"),
        (["--data", "{videos}", "--preset", "huge"], "unknown preset"),
        (["--data", "{videos}", "--resume"], "no checkpoint to resume"),
        (["--data", "{videos}", "--config", "{bad_toml}"], "not valid TOML"),
    ],
    ids=["no-data", "missing-path", "only-garbage", "unknown-field", "negative-lr", "bad-quantise-quality", "bad-preset", "resume-nothing", "bad-toml"],
)
def test_bad_input_is_one_line_exit_2_and_no_run_left(tmp_path, videos, cli, args, fragment):
    (tmp_path / "garbage.mp4").write_bytes(b"\0" * 500)
    (tmp_path / "bad.toml").write_text("steps = = 3\n")
    subst = {"{videos}": str(videos), "{garbage}": str(tmp_path / "garbage.mp4"), "{bad_toml}": str(tmp_path / "bad.toml")}
    out = tmp_path / "run"
    result = cli(["train", "ae", "--preset", "tiny", "--out", out, "--device", "cpu", *[subst.get(a, a) for a in args]])
    assert result.exit_code == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_an_existing_run_is_not_overwritten(tmp_path, videos, cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    result = cli(["train", "ae", "--preset", "tiny", "--data", videos, "--out", out, "--device", "cpu"])
    assert result.exit_code == 2 and "--resume" in result.stderr
    assert (out / "config.json").read_text() == "{}"


def test_config_layers_recipe_file_flags_and_set(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "tiny"\nsteps = 50\n[optim]\nlr = 0.002\nwarmup_steps = 7\n[model]\nstructure_dim = 3\n')
    overrides = {"steps": 40, **parse_set(["objective.kl_weight=0.01", "data.crop=random"])}
    config = resolve_config(read_config_file(path), overrides)
    assert (config.steps, config.optim.lr, config.optim.warmup_steps) == (40, 0.002, 7)  # flag beats file
    assert config.objective.kl_weight == 0.01 and config.data.crop == "random"
    assert config.objective.lpips_net == "alex" and config.batch_size == 2  # the tiny recipe
    assert config.model.structure_dim == 3 and config.model.frames == 6  # preset + [model] change


def test_learning_rate_schedule():
    assert warmup_cosine(0, 0.0, 1.0, 0.0, 10, 110) == 0.0
    assert warmup_cosine(5, 0.0, 1.0, 0.0, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(10, 0.0, 1.0, 0.0, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 0.0, 1.0, 0.1, 10, 110) == pytest.approx(0.55)
    assert warmup_cosine(110, 0.0, 1.0, 0.1, 10, 110) == pytest.approx(0.1)


def _cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "vidtwin_cli", "train", "ae", "--preset", "tiny", "--device", "cpu", "--threads", "1",
            *map(str, args)]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, videos, alex_ckpt):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli_command("--data", videos, "--steps", 100000, "--out", out, "--lpips-weights", alex_ckpt),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopped at step" in stderr and "--resume" in stderr and "Traceback" not in stderr
    name = (out / "checkpoints" / "latest").read_text().strip()
    assert (out / "checkpoints" / f"{name}.safetensors").is_file() and (out / "checkpoints" / f"{name}.state.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_stop_sent_to_the_whole_process_group_saves_a_checkpoint(tmp_path, videos, alex_ckpt, signum, code):
    """Ctrl-C in a terminal and SIGTERM from Slurm or systemd reach the DataLoader workers too. A worker
    killed by SIGTERM once made the trainer die with 'unexpected RuntimeError: DataLoader worker ...
    killed by signal' and no checkpoint."""
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli_command("--data", videos, "--steps", 100000, "--out", out, "--lpips-weights", alex_ckpt,
                                         "--num-workers", 1),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)  # fmt: skip
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "stopped at step" in stderr and "Traceback" not in stderr and "DataLoader" not in stderr
    name = (out / "checkpoints" / "latest").read_text().strip()
    assert (out / "checkpoints" / f"{name}.safetensors").is_file() and (out / "checkpoints" / f"{name}.state.pt").is_file()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, videos, alex_ckpt):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vidtwin_cli",
           *_cli_command("--data", videos, "--steps", 3, "--set", "objective.disc_start=1", "--out", out,
                         "--lpips-weights", alex_ckpt, "--json")[3:]]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # rank 0 alone prints
    assert summary["world_size"] == 2 and summary["steps"] == 3
    records = _train_records(out)
    assert [r["step"] for r in records] == [1, 2, 3] and "d_loss" in records[-1]  # GAN + adaptive weight under DDP
    assert (out / "model.safetensors").is_file()


def test_the_documented_small_recipe_is_the_small_preset_default(tmp_path):
    text = (REPO / "docs" / "training.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train-small.toml").write_text(block)
    documented = resolve_config(read_config_file(tmp_path / "train-small.toml"), {})
    default = resolve_config({"preset": "small"}, {"data.train": list(documented.data.train), "data.val": list(documented.data.val)})
    assert documented == default


def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path, cli):
    """Training in bf16 where the CPU emulates it is several times slower than fp32: say so up front."""
    result = cli(["train", "ae", "--preset", "tiny", "--precision", "bf16", "--steps", 2, "--out", tmp_path / "run",
                  "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 2 and "no training videos" in result.stderr  # the warning comes before any work
    assert ("warning: no native bf16" in result.stderr) == (not cpu_has_native_bf16())
