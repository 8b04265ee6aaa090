"""Setting up one `train dit` run on this process: config, labelled data, latent cache, model, resume.

`train_dit` is what `vidtwin train dit` calls. It shares the run directory, resume rules, DDP
set-up and the loop with `train ae` (`open_run`, `share`, `run_loop`); only the task and the
data differ. config.json keeps the data list, classes and autoencoder, so `--resume` needs only
`--out`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.vtw.header import ModelRef
from vidtwin_cli.generation.weights import load_dit_file
from vidtwin_cli.errors import InputError, ModelError, UsageError
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.codec.results import JsonResult
from vidtwin_cli.video.info import check_fit
from vidtwin_cli.training.checkpointing import RunDir
from vidtwin_cli.training.distributed import DistContext, init_distributed, shutdown_distributed
from vidtwin_cli.training.dit_step import DitTask, DitTrainConfig, fresh_dit, latent_batches, training_metadata
from vidtwin_cli.training.latent_cache import encode_cache, labelled_videos, load_cache
from vidtwin_cli.training.loop import LoopSettings, StepProgress, run_loop
from vidtwin_cli.training.ae_run import open_run, share

log = logging.getLogger(__name__)

Report = Warn
RUN_KIND = "dit"
CACHE_DIR = "latents"  # inside the run directory unless --cache is given


@dataclass
class DitRequest:
    """What the command line asks for."""

    out: Path
    data: list[str] = field(default_factory=list)
    labels: Path | None = None
    labels_from_folders: bool = False
    ae: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # DitTrainConfig fields
    resume: bool = False
    device: str = "auto"
    threads: int = 0
    cache: Path | None = None
    fit: str = "crop"
    encode_batch: int = 8  # tiles per autoencoder call while filling the cache


@dataclass(frozen=True)
class DitTrainResult(JsonResult):
    """A finished `train dit` run; `to_json()` is what `vidtwin train dit --json` prints."""

    run: str  # the run directory
    model: str  # its final model file
    clips: int  # labelled training clips
    classes: list[str]
    parameters: int
    world_size: int
    device: str
    steps: int
    seconds: float  # wall time of this invocation (a resumed run counts from its resume)
    train: dict[str, float]  # the last logged training values
    val: dict[str, float]  # always {}: the DiT has no validation pass


def train_dit(
    req: DitRequest, progress: StepProgress | None = None, report: Report | None = None, warn: Report = log.warning
) -> DitTrainResult | None:
    """Run (or resume) DiT training; returns the result on rank 0 (None on other ranks)."""
    dist = init_distributed(req.device)
    try:
        result = _train(req, dist, progress if dist.is_main else None, report if dist.is_main else None, warn)
        return result if dist.is_main else None
    finally:
        shutdown_distributed()


def _run_settings(req: DitRequest, run: RunDir, resume_step: int | None) -> dict[str, Any]:
    """The run's data, autoencoder and training config: from the flags, or from config.json on resume."""
    if resume_step is not None:
        saved = run.read_config()
        if saved.get("kind") != RUN_KIND:
            raise InputError(f"{run.config_path}: not a DiT training run")
        if req.data or req.labels or req.labels_from_folders or req.ae:
            raise UsageError("--resume continues with the run's own data and autoencoder; drop --data/--labels/--ae")
        saved["train"] = DitTrainConfig.from_dict({**saved["train"], **req.overrides}).to_dict()
        return saved
    check_fit(req.fit)
    if not req.ae:
        raise UsageError("--ae MODEL is required: the autoencoder whose latents the DiT learns")
    rows = labelled_videos(req.data, req.labels, req.labels_from_folders)
    classes = sorted({name for _, name in rows})
    if len(classes) < 2:
        raise InputError(f"need at least 2 classes, found {', '.join(classes) or 'none'}")
    return {
        "kind": RUN_KIND,
        "train": DitTrainConfig.from_dict(req.overrides).to_dict(),
        "autoencoder": req.ae,
        "fit": req.fit,
        "classes": classes,
        "videos": [[str(path), name] for path, name in rows],
    }


def _train(req: DitRequest, dist: DistContext, progress: StepProgress | None, report: Report | None,
           warn: Report) -> DitTrainResult:
    say = report or (lambda msg: None)
    if req.threads > 0:
        torch.set_num_threads(req.threads)
    run = RunDir(req.out)
    resume_step = open_run(run, req.resume)
    settings = _run_settings(req, run, resume_step)
    config = DitTrainConfig.from_dict(settings["train"])
    classes = tuple(settings["classes"])
    videos = [Path(p) for p, _ in settings["videos"]]
    class_ids = [classes.index(name) for _, name in settings["videos"]]

    session = ModelSession(settings["autoencoder"], str(dist.device), batch_size=req.encode_batch, warn=warn)
    loaded, _ = session.load()
    cache_dir = req.cache or run.root / CACHE_DIR
    files = None
    if dist.is_main:
        say(f"data: {len(videos)} videos in {len(classes)} classes ({', '.join(classes)}); encoding into {cache_dir}")
        files = encode_cache(videos, session, cache_dir, settings["fit"], warn=warn)
    files = share(dist, files)
    kept = [(f, c) for f, c in zip(files, class_ids) if f is not None]
    latents, labels, fps = load_cache([f for f, _ in kept], [c for _, c in kept])
    say(f"data: {len(labels)} clips from {len(kept)} videos")
    autoencoder = ModelRef(settings["autoencoder"], loaded.sha256, loaded.config)
    model_config = config.model_config(autoencoder, len(classes))

    if resume_step is not None:
        dit = load_dit_file(run.model_path(resume_step))
        if dit.config != model_config or dit.classes != classes or dit.autoencoder.weights_sha256 != loaded.sha256:
            raise ModelError(f"{run.model_path(resume_step)}: the checkpoint does not match the run's config, "
                             "classes or autoencoder weights")
        model = dit.model
    else:
        model = fresh_dit(config, model_config, latents)
    targets = model.tokens.pack(latents)  # (N, V), normalised with the model's own statistics

    if dist.is_main:
        run.create()
        run.write_config(settings)
    metadata = training_metadata(config, [str(v) for v in videos])
    task = DitTask(config, model, classes, autoencoder, dist, fps, metadata)
    start = resume_step or 0
    if resume_step is not None:
        task.load_state_dict(run.load_state(resume_step)["task"])
        say(f"resuming at step {resume_step} of {config.steps}")
    batches = latent_batches(targets, labels, config.batch_size, config.seed, dist.rank, start, dist.device)
    loop = LoopSettings(config.steps, config.log_every, 0, config.checkpoint_every, config.keep_checkpoints, metadata)
    done = run_loop(task, batches, loop, run, dist, start, progress)
    return DitTrainResult(str(run.root), str(run.final_model), len(labels), list(classes), model.parameter_count(),
                          dist.world_size, str(dist.device), done.steps, done.seconds, done.train, done.val)  # fmt: skip
