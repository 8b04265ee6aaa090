"""The model-independent training loop: steps, metrics, validation, checkpoints, Ctrl-C, DDP ranks.

A model plugs in through `TrainTask` (the autoencoder's is `training/autoencoder.py`). The loop
owns everything else, so `train ae` and `train dit` behave the same way:

* step `s` (0-based) consumes batch `s`; batches are a pure function of (seed, step), and every
  random number inside a step is drawn from generators re-seeded from (seed, rank, step)
  (`step_seed`), so a resumed run repeats an uninterrupted one exactly;
* rank 0 writes metrics and checkpoints and reports progress; the others only compute;
* SIGINT/SIGTERM/SIGHUP ask for a stop: all ranks finish the current step, agree on stopping, rank 0
  saves a checkpoint, and `TrainingInterrupted` is raised (the CLI exits 128 + the signal number).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from vidtwin_cli.interrupts import STOP_SIGNALS, Interrupted
from vidtwin_cli.training.checkpointing import MetricsLog, RunDir
from vidtwin_cli.training.distributed import DistContext

@dataclass(frozen=True)
class LoopSummary:
    """What `run_loop` did, as rank 0 saw it."""

    steps: int  # the step the run stopped at (its total)
    seconds: float  # wall time of this call (a resumed run counts from its resume)
    train: dict[str, float]  # the last logged training values, steps_per_s included
    val: dict[str, float]  # the last validation values ({} without validation)


class TrainingInterrupted(Interrupted):
    """Stopped by signal `signum` after saving the checkpoint of `step` (the CLI exits 128 + signum)."""

    def __init__(self, step: int, checkpoint: Path, signum: int = signal.SIGINT) -> None:
        super().__init__(signum, f"stopped at step {step}; saved {checkpoint}; continue with --resume")
        self.step, self.checkpoint = step, checkpoint


StepProgress = Callable[[int, int, dict[str, float]], None]  # (step, total steps, latest logged values)


class TrainTask(Protocol):
    """What a model contributes to the loop."""

    def train_step(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """One optimisation step on `batch` (all optimisers); returns scalar tensors to log."""

    def validate(self) -> dict[str, float]:
        """Held-out metrics (called on rank 0 only); {} when there is no validation data."""

    def state_dict(self) -> dict[str, Any]:
        """Everything but the model weights needed to resume (optimisers, auxiliary modules)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_model(self, path: Path, metadata: dict[str, str]) -> None:
        """Write the model file (the run's deliverable) atomically."""

    def fingerprint(self) -> torch.Tensor:
        """A float64 scalar of all trained weights; equal on every DDP rank while they stay in sync."""


@dataclass(frozen=True)
class LoopSettings:
    steps: int  # total steps of the run (a resumed run stops here too)
    log_every: int
    val_every: int  # 0: only at the end
    checkpoint_every: int  # 0: only at the end and on interruption
    keep_checkpoints: int
    metadata: dict[str, str]  # stored in every model file (run config, data list, ...)


def step_seed(seed: int, *key: int) -> int:
    """A 63-bit seed for (seed, key...), well mixed (numpy SeedSequence)."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def warmup_cosine(step: int, start: float, peak: float, floor: float, warmup: int, total: int) -> float:
    """LR at `step`: linear from `start` to `peak` over `warmup` steps, then cosine down to `floor` at `total`."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    done = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * done))


class StopRequest:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag read at step boundaries (main thread only).

    Repeated signals while stopping are ignored: torchrun forwards the terminal's Ctrl-C to
    every rank a second time, and the checkpoint must still be written.
    """

    SIGNALS = STOP_SIGNALS

    def __init__(self) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)

    def _handler(self, signum, frame) -> None:
        if not self.requested:
            self.signum = signum
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _save(task: TrainTask, run: RunDir, step: int, settings: LoopSettings) -> None:
    meta = {**settings.metadata, "training_step": str(step)}
    task.save_model(run.model_path(step), meta)
    run.save_state(step, {"task": task.state_dict()})
    run.commit(step, settings.keep_checkpoints)


def run_loop(
    task: TrainTask,
    batches: Iterable[Any],
    settings: LoopSettings,
    run: RunDir,
    dist: DistContext,
    start_step: int = 0,
    progress: StepProgress | None = None,
) -> LoopSummary:
    """Train from `start_step` to `settings.steps`; returns a summary (rank 0's view).

    `batches` must yield batch `start_step` first. Raises `TrainingInterrupted` after saving when
    stopped by a signal.
    """
    metrics = MetricsLog(run.metrics_path, start_step if start_step > 0 else None) if dist.is_main else None
    step, saved_at = start_step, start_step if start_step > 0 else None
    last: dict[str, float] = {}
    val: dict[str, float] = {}
    t0 = t_window = time.perf_counter()
    window_start = step
    stop = StopRequest()
    with stop.installed():
        batch_iter = iter(batches)
        while step < settings.steps:
            logs = task.train_step(next(batch_iter), step)
            step += 1
            if step % settings.log_every == 0 or step == settings.steps:
                values = dist.mean(logs)
                now = time.perf_counter()
                rate = (step - window_start) / max(now - t_window, 1e-9)
                t_window, window_start = now, step
                last = {**values, "steps_per_s": rate}
                if metrics:
                    metrics.write({"step": step, "split": "train", "time": round(now - t0, 3), **last})
            if dist.is_main and ((settings.val_every and step % settings.val_every == 0) or step == settings.steps):
                val = task.validate()
                if val and metrics:
                    metrics.write({"step": step, "split": "val", **val})
            if progress:
                progress(step, settings.steps, last)
            if dist.any(stop.requested):
                if dist.is_main and saved_at != step:
                    _save(task, run, step, settings)
                dist.barrier()
                raise TrainingInterrupted(step, run.model_path(step), stop.signum)
            if (settings.checkpoint_every and step % settings.checkpoint_every == 0) or step == settings.steps:
                if dist.is_main:
                    _save(task, run, step, settings)
                saved_at = step
    dist.check_in_sync(task.fingerprint())
    if dist.is_main:
        task.save_model(run.final_model, {**settings.metadata, "training_step": str(step)})
    dist.barrier()
    return LoopSummary(step, time.perf_counter() - t0, last, val)
