"""A batch from start to end: which inputs still need work, the backend that does it, the summary.

`run_batch` walks the inputs in order. An input whose output exists, verifies and was made with
the same settings is skipped without any model work; every other input becomes a `Job` that a
backend (`LocalPool`, `RayPool`) pulls when it has a free worker. Each finished job is recorded
in the manifest at once, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import torch

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.errors import UsageError
from vidtwin_cli.codec.runtime import cuda_device_count, resolve_device, resolve_precision
from vidtwin_cli.batch.inputs import InputFile
from vidtwin_cli.batch.jobs import Job, Outcome, WorkerSpec, finished_output
from vidtwin_cli.batch.manifest import JobLog, JobRecord

FileState = Literal["ok", "failed", "skipped"]
RAY_DEVICES = ("cpu", "cuda", "auto")


class Backend(Protocol):
    started: int  # worker processes / actors started

    def run(self, jobs: Iterator[Job], on_frames: Progress, on_done: Callable[[Outcome], None]) -> None: ...


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_local(device: str, precisions: Sequence[str], workers: int | None, threads: int | None) -> tuple[list[str], int]:
    """Devices of the local workers and torch threads per worker; bad device/precision flags raise here.

    CPU: one worker unless asked, threads = cores // workers (2 cores: 1 worker × 2 threads).
    "cuda" (or "auto" with CUDA): one worker per GPU unless asked, spread round-robin.
    """
    resolved = resolve_device(device)
    for precision in precisions:
        resolve_precision(precision, resolved)
    if resolved.type == "cuda" and resolved.index is None:
        gpus = cuda_device_count()
        devices = [f"cuda:{i % gpus}" for i in range(workers or gpus)]
    else:
        devices = [str(resolved)] * (workers or 1)
    return devices, threads or max(1, usable_cores() // len(devices))


def plan_ray(device: str, precisions: Sequence[str]) -> bool | None:
    """Whether Ray actors take a GPU each (None: if the cluster has GPUs); the driver itself may have none."""
    if device not in RAY_DEVICES:
        raise UsageError(f"with --ray, --device is one of {', '.join(RAY_DEVICES)} (Ray assigns the GPUs)")
    for precision in precisions:
        resolve_precision(precision, torch.device("cpu" if device == "cpu" else "cuda"))
    return None if device == "auto" else device == "cuda"


@dataclass
class BatchSummary:
    """The outcome of one run, as printed by `--json` (docs/batch.md)."""

    command: str
    files: int
    ok: int = 0  # done in this run
    skipped: int = 0  # found done (output exists and verifies)
    failed: int = 0
    input_bytes: int = 0  # of every done file (ok + skipped)
    output_bytes: int = 0
    frames: int = 0  # done in this run
    wall_s: float = 0.0
    workers_started: int = 0
    model_loads: int = 0
    failures: list[dict] = field(default_factory=list)

    def add(self, record: JobRecord, state: FileState) -> None:
        setattr(self, state, getattr(self, state) + 1)
        if state == "failed":
            self.failures.append({"input": record.input, "error": record.error})
            return
        self.input_bytes += record.input_bytes or 0
        self.output_bytes += record.output_bytes or 0
        if state == "ok":
            self.frames += record.frames or 0

    def to_dict(self) -> dict:
        video, vtw = {"encode": (self.input_bytes, self.output_bytes),
                      "decode": (self.output_bytes, self.input_bytes)}.get(self.command, (0, 0))  # fmt: skip
        worked = self.ok + self.failed
        return {
            "command": self.command,
            "files": self.files,
            "ok": self.ok,
            "skipped": self.skipped,
            "failed": self.failed,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "compression_ratio": video / vtw if vtw else None,  # video bytes / .vtw bytes (encode, decode)
            "frames": self.frames,
            "wall_s": round(self.wall_s, 3),
            "files_per_s": worked / self.wall_s if self.wall_s > 0 else None,
            "frames_per_s": self.frames / self.wall_s if self.wall_s > 0 else None,
            "workers_started": self.workers_started,
            "model_loads": self.model_loads,
            "failures": self.failures,
        }


def run_batch(
    pairs: Sequence[tuple[InputFile, Path]],
    spec: WorkerSpec,
    backend: Backend,
    log: JobLog,
    *,
    force: bool = False,
    on_file: Callable[[JobRecord, FileState], None] | None = None,
    on_frames: Progress | None = None,
    warn: Warn | None = None,
) -> BatchSummary:
    """Bring every (input, output) pair to done, recording each in `log`; `force` redoes finished ones."""
    started = time.perf_counter()
    summary = BatchSummary(spec.settings.kind, len(pairs))

    def finish(record: JobRecord, state: FileState) -> None:
        summary.add(record, state)
        if on_file:
            on_file(record, state)

    def jobs() -> Iterator[Job]:
        for item, dst in pairs:
            previous = log.get(str(item.path))
            found = None if force else finished_output(item.path, dst, spec)
            if found is not None:
                if previous is not None and previous.status == "ok" and previous.output == found.output:
                    found = previous
                else:  # made by another run (another shard, a lost manifest): record it now
                    found = JobRecord(**{**found.to_dict(), "attempts": previous.attempts if previous else 0})
                    log.put(found)
                finish(found, "skipped")
                continue
            yield Job(item.path, dst, (previous.attempts if previous else 0) + 1)

    def done(outcome: Outcome) -> None:
        record = outcome.record
        for message in outcome.warnings:
            if warn:
                warn(f"{record.input}: {message}")
        summary.model_loads += outcome.loaded_model
        log.put(record)
        finish(record, record.status)

    try:
        backend.run(jobs(), on_frames or (lambda frames: None), done)
    finally:
        summary.workers_started = backend.started
        summary.wall_s = time.perf_counter() - started
    return summary
