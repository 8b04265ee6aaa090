"""Ray mode: a pool of Ray actors (one per GPU, or per group of CPUs), each with its own model.

The driver hands each actor one file at a time and pulls the next input only when an actor is
free, so however many files there are, at most one job per actor is in flight and memory stays
flat. Inputs and outputs are paths: on a cluster of several machines SRC and OUT_DIR must be on a
filesystem every node mounts at the same path (docs/batch.md). Ray is an optional extra.

Stopping: the driver asks every busy actor to cancel (the actor is threaded, so `cancel` runs
beside the job, which stops at its next clip and removes its temporaries), waits a little, then
kills the actors.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from vidtwin_cli.atomic import remove_temporaries
from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.errors import RuntimeFailure, UsageError, one_line
from vidtwin_cli.batch.jobs import END, Job, JobCancelled, Outcome, Worker, WorkerSpec, lost

INSTALL_HINT = "pip install 'vidtwin[ray]'"
LOCAL = "local"  # --ray local: start a private Ray instance on this machine
WAIT_S = 1.0  # longest stretch the driver blocks in Ray without a chance to see Ctrl-C / SIGTERM
CANCEL_GRACE_S = 15.0  # how long cancelled jobs may take to reach their next clip before actors are killed


def import_ray() -> Any:
    """The `ray` module, or a one-line UsageError telling how to install it."""
    try:
        import ray
    except ImportError as e:
        raise UsageError(f"--ray needs Ray, an optional extra: {INSTALL_HINT}") from e
    return ray


class BatchActor:
    """The body of one Ray actor: a `Worker` with `threads` torch threads."""

    def __init__(self, spec: WorkerSpec) -> None:
        torch.set_num_threads(spec.threads)
        self.worker = Worker(spec)

    def run(self, job: Job) -> Outcome:
        try:
            return self.worker.run(job)
        except JobCancelled:
            return Outcome(None)

    def cancel(self) -> None:
        self.worker.cancel()


class RayPool:
    """Runs jobs on Ray actors; `address` is "local", "auto", "HOST:PORT" or "ray://HOST:PORT"."""

    def __init__(self, spec: WorkerSpec, address: str, workers: int | None, gpu: bool | None,
                 warn: Warn) -> None:  # fmt: skip
        self.ray = import_ray()
        self.spec, self.address, self.workers, self.gpu, self.warn = spec, address, workers, gpu, warn
        self.started = 0  # actors started, replacements included

    def _connect(self) -> bool:
        """Start or join Ray; True when this call started it (and so must shut it down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        local = {"include_dashboard": False} if self.address == LOCAL else {}
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:  # actor output stays in Ray's logs: stdout is for --json only (warnings come back with outcomes)
            ray.init(address=None if self.address == LOCAL else self.address, logging_level=logging.WARNING,
                     log_to_driver=False, **local)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"--ray {self.address}: cannot start or join Ray ({one_line(e)})") from e
        finally:  # Ray's core installs its own fatal-signal handlers; ours must run so that cleanup happens
            for sig, handler in handlers.items():
                if handler is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(sig, handler)
        return True

    def _actor_class(self) -> Any:
        """BatchActor as a Ray actor: threaded (a second call, `cancel`, runs beside `run`)."""
        cpus = self.ray.cluster_resources().get("CPU", 0)
        gpus = self.ray.cluster_resources().get("GPU", 0)
        use_gpu = bool(gpus) if self.gpu is None else self.gpu
        if use_gpu and not gpus:
            raise UsageError(f"--device {self.spec.device}: the Ray cluster has no GPUs")
        per_actor = {"num_gpus": 1, "num_cpus": self.spec.threads} if use_gpu else {"num_cpus": self.spec.threads}
        slots = int(gpus) if use_gpu else int(cpus // self.spec.threads)
        self.workers = self.workers or max(1, slots)
        if self.workers > slots:
            self.warn(f"{self.workers} actors need more than the cluster's {int(cpus)} CPUs / {int(gpus)} GPUs; "
                      "the rest wait until resources free up (or the cluster grows)")  # fmt: skip
        # Ray gives each GPU actor its own CUDA_VISIBLE_DEVICES; CPU actors stay off any GPU their node has.
        self.spec = dataclasses.replace(self.spec, device="cuda" if use_gpu else "cpu")
        return self.ray.remote(max_concurrency=2, **per_actor)(BatchActor)

    def run(self, jobs: Iterator[Job | None], on_frames: Progress, on_done: Callable[[Outcome], None]) -> None:
        """Run every job on the actor pool; returns when all are done, raises on a fatal error.

        `jobs` yields None when it has nothing to start yet (inputs claimed elsewhere): asked again
        after WAIT_S or when an actor is free.
        """
        job = next(jobs, END)
        while job is None:  # Ray starts only once there is a file to work on
            time.sleep(WAIT_S)
            job = next(jobs, END)
        if job is END:  # nothing to do: do not even start Ray
            return
        ray = self.ray
        started_ray = self._connect()
        in_flight: dict[Any, tuple[Any, Job]] = {}  # ObjectRef -> (actor, job)
        idle: list[Any] = []
        finished = False
        try:
            actor_class = self._actor_class()
            idle = [self._new_actor(actor_class) for _ in range(self.workers)]
            while job is not END or in_flight:
                if job is None and idle:
                    job = next(jobs, END)
                while idle and isinstance(job, Job):
                    actor = idle.pop()
                    in_flight[actor.run.remote(job)] = (actor, job)
                    job = next(jobs, END)
                if not in_flight:
                    if job is None:
                        time.sleep(WAIT_S)
                    continue
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    actor, done_job = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayActorError as e:
                        outcome = lost(done_job, f"its Ray actor died ({_first_line(e)})")
                        actor = self._new_actor(actor_class)
                    except ray.exceptions.RayError as e:
                        raise RuntimeFailure(f"Ray failed on {done_job.input}: {_first_line(e)}") from e
                    idle.append(actor)
                    if outcome.fatal is not None:
                        raise outcome.fatal
                    on_frames(outcome.record.frames or 0)
                    on_done(outcome)
            finished = True
        finally:
            self._stop(in_flight, idle, graceful=finished)
            if started_ray:
                ray.shutdown()

    def _new_actor(self, actor_class: Any) -> Any:
        self.started += 1
        return actor_class.remote(self.spec)

    def _stop(self, in_flight: dict[Any, tuple[Any, Job]], idle: list[Any], graceful: bool) -> None:
        ray = self.ray
        if in_flight and not graceful:
            for actor, _ in in_flight.values():
                actor.cancel.remote()
            ray.wait(list(in_flight), num_returns=len(in_flight), timeout=CANCEL_GRACE_S)
        for actor in [a for a, _ in in_flight.values()] + idle:
            ray.kill(actor)
        for _, job in in_flight.values():
            remove_temporaries(job.output, any_owner=True)  # only an actor killed mid-write leaves any; on any host


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
