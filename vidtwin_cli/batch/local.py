"""Local mode: worker processes on this machine, each with its own model, fed one file at a time.

Workers are spawned (never forked: torch and its thread pools do not survive a fork) only when a
file needs work, so a batch with nothing left to do starts none. Each worker holds one file at a
time, so what an interrupt can lose is at most one file per worker, and a worker that dies (out of
memory, a crash in native code) fails only its own file: a fresh worker takes its place.

Stopping: Ctrl-C reaches every process of the terminal's group, so workers ignore SIGINT and let
the parent decide; the parent sends each worker SIGTERM, which abandons its file (the pipeline's
atomic writers delete their temporaries) and exits. A parent killed outright takes its workers
with it (Linux: the kernel sends them SIGTERM; elsewhere an idle worker notices and exits).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import torch

from vidtwin_cli.atomic import remove_temporaries
from vidtwin_cli.callbacks import Progress
from vidtwin_cli.batch.jobs import END, Job, JobCancelled, Outcome, Worker, WorkerSpec, lost

IDLE_POLL_S = 1.0  # how often an idle worker checks that its parent is still there
EVENT_POLL_S = 0.5  # how often the parent checks for dead workers while waiting
PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>
STOP_GRACE_S = 10.0  # how long a stopping worker may take to clean up before it is killed


def _cancel(signum: int, frame: Any) -> None:
    raise JobCancelled


def _end_with_parent(parent: int) -> bool:
    """Have Linux send this worker SIGTERM when its parent dies; False when the parent is gone already.

    A batch killed outright (SIGKILL) leaves its claims to be taken over by other processes; its
    workers must not go on with the files those processes now redo.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def _worker_main(number: int, spec: WorkerSpec, tasks: multiprocessing.Queue, events: multiprocessing.Queue) -> None:
    """A worker process: run jobs from `tasks` until None, report frames and outcomes on `events`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _cancel)
    signal.signal(signal.SIGHUP, _cancel)  # the terminal closed: stop like SIGTERM (the parent does too)
    os.dup2(2, 1)  # the parent's stdout carries --json only: whatever a library prints here goes to stderr
    sys.stdout = sys.stderr
    parent = multiprocessing.parent_process().pid
    try:
        if not _end_with_parent(parent):
            return
        torch.set_num_threads(spec.threads)
        worker = Worker(spec)
        while True:
            try:
                job = tasks.get(timeout=IDLE_POLL_S)
            except queue.Empty:
                if os.getppid() != parent:  # orphaned (the parent was killed): nobody wants more work
                    return
                continue
            if job is None:
                return
            outcome = worker.run(job, progress=lambda frames: events.put(("frames", number, frames)))
            events.put(("done", number, outcome))
    except JobCancelled:
        return


@dataclass
class _Slot:
    number: int
    process: BaseProcess
    tasks: multiprocessing.Queue
    job: Job | None = None


class LocalPool:
    """One worker process per entry of `devices` (e.g. ["cpu", "cpu"] or ["cuda:0", "cuda:1"])."""

    def __init__(self, spec: WorkerSpec, devices: Sequence[str]) -> None:
        if not devices:
            raise ValueError("a pool needs at least one worker")
        self.spec, self.devices = spec, list(devices)
        self.started = 0  # worker processes started, replacements included
        self._context = multiprocessing.get_context("spawn")
        self._checked = 0.0  # when dead workers were last looked for

    def run(self, jobs: Iterator[Job | None], on_frames: Progress, on_done: Callable[[Outcome], None]) -> None:
        """Run every job, calling back in this process; returns when all are done, raises on a fatal error.

        `jobs` yields None when it has nothing to start yet (inputs claimed elsewhere): asked again after
        the next event or EVENT_POLL_S.
        """
        events = self._context.Queue()
        slots: list[_Slot | None] = [None] * len(self.devices)
        more, finished = True, False
        try:
            while True:
                while more and any(s is None or s.job is None for s in slots):
                    job = next(jobs, END)
                    if job is END:
                        more = False
                    if not isinstance(job, Job):
                        break
                    position = next(i for i, s in enumerate(slots) if s is None or s.job is None)
                    slot = slots[position] or self._start(position, events)
                    slots[position] = slot
                    slot.job = job
                    slot.tasks.put(job)
                if not more and not any(s is not None and s.job is not None for s in slots):
                    break
                self._wait(events, slots, on_frames, on_done)
            finished = True
        finally:
            self._stop(slots, events, graceful=finished)

    def _start(self, position: int, events: multiprocessing.Queue) -> _Slot:
        spec = dataclasses.replace(self.spec, device=self.devices[position])
        tasks = self._context.Queue()
        number = self.started
        process = self._context.Process(target=_worker_main, args=(number, spec, tasks, events),
                                        name=f"vidtwin-batch-{number}", daemon=True)  # fmt: skip
        process.start()
        self.started += 1
        return _Slot(number, process, tasks)

    def _wait(self, events: multiprocessing.Queue, slots: list[_Slot | None], on_frames: Progress,
              on_done: Callable[[Outcome], None]) -> None:  # fmt: skip
        """Handle one event (waiting at most EVENT_POLL_S), then give up on workers that died."""
        try:
            kind, number, payload = events.get(timeout=EVENT_POLL_S)
        except queue.Empty:
            kind = None
        if kind is not None:
            self._handle(kind, number, payload, slots, on_frames, on_done)
        if time.monotonic() - self._checked < EVENT_POLL_S:
            return
        self._checked = time.monotonic()
        for position, slot in enumerate(slots):
            if slot is not None and not slot.process.is_alive():
                slots[position] = None
                if slot.job is not None:
                    remove_temporaries(slot.job.output)
                    on_done(lost(slot.job, f"its worker process died (exit code {slot.process.exitcode}); "
                                           "out of memory?"))  # fmt: skip

    def _handle(self, kind: str, number: int, payload: Any, slots: list[_Slot | None], on_frames: Progress,
                on_done: Callable[[Outcome], None]) -> None:  # fmt: skip
        slot = next((s for s in slots if s is not None and s.number == number), None)
        if slot is None:  # a late word from a worker already given up for dead
            return
        if kind == "frames":
            on_frames(payload)
        elif kind == "done":
            slot.job = None
            if payload.fatal is not None:
                raise payload.fatal
            on_done(payload)

    def _stop(self, slots: list[_Slot | None], events: multiprocessing.Queue, graceful: bool) -> None:
        """End every worker: politely when all work is done, else at once (SIGTERM, then SIGKILL)."""
        live = [s for s in slots if s is not None]
        for slot in live:
            if graceful:
                slot.tasks.put(None)
            else:
                slot.tasks.cancel_join_thread()
                slot.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for slot in live:
            while slot.process.is_alive() and time.monotonic() < deadline:
                _drain(events)  # a worker cannot exit while its last events sit unread in a full pipe
                slot.process.join(0.05)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            if slot.job is not None:
                remove_temporaries(slot.job.output)  # only a SIGKILLed writer leaves any
        _drain(events)
        events.close()


def _drain(events: multiprocessing.Queue) -> None:
    try:
        while True:
            events.get_nowait()
    except (queue.Empty, OSError, EOFError):
        pass
