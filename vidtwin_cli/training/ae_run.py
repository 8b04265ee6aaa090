"""Setting up one `train ae` run on this process: config, run directory, model, data, resume.

`train_autoencoder` is what the `vidtwin train ae` command calls. The pieces any trainer needs
(`open_run`, `share`) are separate so `train dit` can use them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.errors import InputError, ModelError, UsageError
from vidtwin_cli.bench.lpips_weights import load_lpips
from vidtwin_cli.codec.results import JsonResult
from vidtwin_cli.codec.runtime import slow_bf16_warning
from vidtwin_cli.codec.weights import build_model, read_model_file, resolve_model
from vidtwin_cli.training.ae_step import AutoencoderTask, fresh_model, training_metadata
from vidtwin_cli.training.checkpointing import RunDir
from vidtwin_cli.training.config import TrainConfig, config_from_dict, read_config_file, resolve_config
from vidtwin_cli.media import list_videos
from vidtwin_cli.training.data import ClipDataset, clip_loader, describe, probe_videos, validation_clips
from vidtwin_cli.training.distributed import DistContext, init_distributed, shutdown_distributed
from vidtwin_cli.training.loop import LoopSettings, StepProgress, run_loop

log = logging.getLogger(__name__)

Report = Warn


@dataclass
class TrainRequest:
    """What the command line asks for (everything else is in the config)."""

    out: Path
    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys: {"optim.lr": 1e-4}
    resume: bool = False
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0: leave torch's default
    lpips_weights: Path | None = None


@dataclass(frozen=True)
class AutoencoderTrainResult(JsonResult):
    """A finished `train ae` run; `to_json()` is what `vidtwin train ae --json` prints."""

    run: str  # the run directory
    model: str  # its final model file
    world_size: int  # processes that trained (torchrun)
    device: str
    steps: int
    seconds: float  # wall time of this invocation (a resumed run counts from its resume)
    train: dict[str, float]  # the last logged training values
    val: dict[str, float]  # the last validation values: psnr, ssim, lpips ({} without --val)


def share(dist: DistContext, value: Any) -> Any:
    """Rank 0's `value` on every rank (pickled broadcast)."""
    if not dist.distributed:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def open_run(run: RunDir, resume: bool) -> int | None:
    """The step to resume from (None for a new run); refuses to overwrite an existing run."""
    if resume:
        step = run.latest_step()
        if step is None:
            raise InputError(f"{run.root}: no checkpoint to resume from")
        return step
    if run.config_path.exists() or (run.checkpoints / "latest").exists():
        raise UsageError(f"{run.root} already holds a training run; pass --resume to continue it or choose another --out")
    return None


def _config(req: TrainRequest, run: RunDir, resume_step: int | None) -> tuple[TrainConfig, Any]:
    """The run's config and the initial model (None: build it later)."""
    file_values = read_config_file(req.config_file) if req.config_file else {}
    if resume_step is not None:
        return config_from_dict(run.read_config(), file_values, req.overrides), None
    init = req.overrides.get("init", file_values.get("init"))
    if init:
        loaded = resolve_model(init)
        return resolve_config(file_values, req.overrides, model=loaded.config), loaded.model
    return resolve_config(file_values, req.overrides), None


def train_autoencoder(
    req: TrainRequest, progress: StepProgress | None = None, report: Report | None = None
) -> AutoencoderTrainResult | None:
    """Run (or resume) autoencoder training; returns the result on rank 0 (None on other ranks).
    Raises TrainingInterrupted after saving when stopped by Ctrl-C, SIGTERM or SIGHUP."""
    dist = init_distributed(req.device)
    try:
        result = _train(req, dist, progress if dist.is_main else None, report if dist.is_main else None)
        return result if dist.is_main else None
    finally:
        shutdown_distributed()


def _train(req: TrainRequest, dist: DistContext, progress: StepProgress | None,
           report: Report | None) -> AutoencoderTrainResult:  # fmt: skip
    say = report or (lambda msg: None)
    if req.threads > 0:
        torch.set_num_threads(req.threads)
    run = RunDir(req.out)
    resume_step = open_run(run, req.resume)
    config, model = _config(req, run, resume_step)
    if config.precision == "bf16" and (slow := slow_bf16_warning(dist.device, torch.bfloat16)):
        log.warning(slow)
    if not config.data.train:
        raise UsageError("no training videos: pass --data DIR|LIST|VIDEO (or data.train in the config file)")

    if resume_step is not None:
        model_config, tensors, _ = read_model_file(run.model_path(resume_step))
        if model_config != config.model:
            raise ModelError(f"{run.model_path(resume_step)}: model config differs from the run's config.json")
        model = build_model(model_config, tensors)
    elif model is None:
        model = fresh_model(config)

    lpips = None
    if config.objective.perceptual_weight > 0:
        if dist.is_main:  # the first use converts the weights into the cache; let one process do it
            lpips = load_lpips(config.objective.lpips_net, req.lpips_weights)
        dist.barrier()
        lpips = lpips or load_lpips(config.objective.lpips_net, req.lpips_weights)

    videos = share(dist, probe_videos(list_videos(config.data.train)) if dist.is_main else None)
    if not videos:
        raise InputError("none of the training videos could be read")
    say(f"data: {describe(videos, config.data.sample_fps)}")
    mc = config.model
    dataset = ClipDataset(videos, config.data, mc.frames, mc.image_size, config.seed)
    if config.data.cache_mb and dataset.decoded_bytes() <= config.data.cache_mb * 2**20:
        dataset.preload()
        say(f"data: {dataset.decoded_bytes() / 2**20:.0f} MiB of frames decoded into RAM")
    elif config.data.cache_mb:
        say(f"data: {dataset.decoded_bytes() / 2**20:.0f} MiB of frames exceed data.cache_mb; decoding per clip")
    val = None
    if dist.is_main and config.data.val:
        val_videos = probe_videos(list_videos(config.data.val))
        val = validation_clips(val_videos, config.data, mc.frames, mc.image_size, config.seed)
        say(f"validation: {len(val)} clips from {len(val_videos)} videos")

    if dist.is_main:  # only now: a run that fails on its inputs leaves no directory behind
        run.create()
        run.write_config(config.to_dict())
    metadata = training_metadata(config, [v.path for v in videos])
    task = AutoencoderTask(config, model, lpips, dist, val, metadata)
    start = resume_step or 0
    if resume_step is not None:
        task.load_state_dict(run.load_state(resume_step)["task"])
        say(f"resuming at step {resume_step} of {config.steps}")
    loader = clip_loader(dataset, config.batch_size, start, dist.rank, dist.world_size,
                         config.data.num_workers, pin_memory=dist.device.type == "cuda")  # fmt: skip
    settings = LoopSettings(config.steps, config.log_every, config.val_every, config.checkpoint_every,
                            config.keep_checkpoints, metadata)  # fmt: skip
    done = run_loop(task, loader, settings, run, dist, start, progress)
    return AutoencoderTrainResult(str(run.root), str(run.final_model), dist.world_size, str(dist.device), done.steps,
                                  done.seconds, done.train, done.val)  # fmt: skip
