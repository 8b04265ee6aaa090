"""A batch from start to end: which inputs still need work, the backend that does it, the summary.

`run_batch` walks the inputs in order and claims each before looking at it (`claims.py`), so that
several processes on one OUT_DIR never work on the same input. With the claim held, an input that
another process worked on since this one started is counted as theirs; one whose output exists,
verifies and was made with the same settings is skipped without any model work; every other input
becomes a `Job` that a backend (`LocalPool`, `RayPool`) pulls when it has a free worker. Inputs
claimed by other processes are looked at again until they are settled, or taken over when their
claim goes stale. Each finished job is recorded in the manifest at once, so an interrupted batch
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import torch

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.atomic import remove_temporaries
from vidtwin_cli.errors import UsageError, one_line
from vidtwin_cli.codec.runtime import cuda_device_count, resolve_device, resolve_precision
from vidtwin_cli.batch.inputs import InputFile
from vidtwin_cli.batch.jobs import Job, Outcome, WorkerSpec, finished_output
from vidtwin_cli.batch.claims import CLAIMS_FOLDER, ClaimError, Claims, Seen, output_claim
from vidtwin_cli.batch.manifest import JobLog, JobRecord, utc_now

FileState = Literal["ok", "failed", "skipped", "others"]
RAY_DEVICES = ("cpu", "cuda", "auto")
RESCAN_S = 1.0  # how often inputs claimed by other processes are looked at again (at most)


class Backend(Protocol):
    """Runs jobs; `jobs` may yield None: nothing to start now, ask again after a while (or when a job ends)."""

    started: int  # worker processes / actors started

    def run(self, jobs: Iterator[Job | None], on_frames: Progress, on_done: Callable[[Outcome], None]) -> None: ...


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
    others: int = 0  # done (or failed) during this run by other processes on the same OUT_DIR
    input_bytes: int = 0  # of every done file (ok + skipped)
    output_bytes: int = 0
    frames: int = 0  # done in this run
    wall_s: float = 0.0
    workers_started: int = 0
    model_loads: int = 0
    failures: list[dict] = field(default_factory=list)

    def add(self, record: JobRecord, state: FileState) -> None:
        setattr(self, state, getattr(self, state) + 1)
        if record.status == "failed":
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
            "others": self.others,
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
    claims: Claims,
    out_dir: Path,
    *,
    force: bool = False,
    on_file: Callable[[JobRecord, FileState], None] | None = None,
    on_frames: Progress | None = None,
    warn: Warn | None = None,
) -> BatchSummary:
    """Bring every (input, output below `out_dir`) pair to done, recorded in `log`; `force` redoes finished ones."""
    started = time.perf_counter()
    summary = BatchSummary(spec.settings.kind, len(pairs))
    held: dict[str, Path] = {}  # output -> its claim, while its job runs
    say = warn or (lambda message: None)

    def finish(record: JobRecord, state: FileState) -> None:
        summary.add(record, state)
        if on_file:
            on_file(record, state)

    def settle(item: InputFile, dst: Path, replaced: Seen | None) -> Job | None:
        """With the input claimed: the job it needs, or None when it is settled (done here or elsewhere)."""
        log.refresh()
        other = log.by_other(str(item.path))
        if other is not None and (other.status == "failed" or _has_size(dst, other.output_bytes)):
            finish(other, "others")
            return None
        previous = log.get(str(item.path))
        found = None if force else finished_output(item.path, dst, spec)
        if found is not None:
            if previous is not None and previous.status == "ok" and previous.output == found.output:
                found = previous
            else:  # made by another run (another shard, a lost manifest): record it now
                found = JobRecord(**{**found.to_dict(), "attempts": previous.attempts if previous else 0})
                log.put(found)
            finish(found, "skipped")
            return None
        if replaced is not None:  # its holder died mid-file: what it left is ours to clear, on any host
            say(f"{item.path}: taking over from {replaced.holder or 'a process'} (claim stale for "
                f"{replaced.age_s:.0f} s or its process gone)")
            remove_temporaries(dst, any_owner=True)
        return Job(item.path, dst, (previous.attempts if previous else 0) + 1)

    def unclaimable(item: InputFile, dst: Path, error: ClaimError) -> None:
        previous = log.get(str(item.path))
        record = JobRecord(str(item.path), str(dst), "failed", error=one_line(error),
                           attempts=previous.attempts if previous else 0, finished=utc_now())  # fmt: skip
        log.put(record)
        finish(record, "failed")

    def jobs() -> Iterator[Job | None]:
        waiting = list(pairs)
        while waiting:
            elsewhere = []
            for item, dst in waiting:
                claim = output_claim(out_dir, dst)
                try:
                    taken = claims.take(claim)
                except ClaimError as e:
                    unclaimable(item, dst, e)
                    continue
                if taken is None:
                    elsewhere.append((item, dst))
                    continue
                job = None
                try:
                    job = settle(item, dst, taken.replaced)
                finally:
                    if job is None:
                        claims.release(claim)
                if job is not None:
                    held[str(dst)] = claim
                    yield job
            waiting = elsewhere
            rescan = time.monotonic() + min(RESCAN_S, claims.beat_s)
            while waiting and time.monotonic() < rescan:
                yield None

    def done(outcome: Outcome) -> None:
        record = outcome.record
        for message in outcome.warnings:
            say(f"{record.input}: {message}")
        summary.model_loads += outcome.loaded_model
        log.put(record)
        claims.release(held[record.output])
        del held[record.output]
        finish(record, record.status)

    try:
        backend.run(jobs(), on_frames or (lambda frames: None), done)
    finally:
        summary.workers_started = backend.started
        summary.wall_s = time.perf_counter() - started
        claims.release_all()  # of files abandoned (an interrupt, a fatal error): free for others at once
        with contextlib.suppress(OSError):  # only when empty: no other process holds a claim
            (out_dir / CLAIMS_FOLDER).rmdir()
    return summary


def _has_size(path: Path, size: int | None) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False
