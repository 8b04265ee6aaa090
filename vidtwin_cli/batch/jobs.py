"""One file of a batch: what to do with it, whether it is already done, and the worker that does it.

A `Worker` lives in one process (a local worker process or a Ray actor) and owns one
`ModelSession`, so the model loads at most once per process, and only when a file needs it.
Everything that crosses a process boundary here (settings, jobs, outcomes) is a small picklable
dataclass.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.vtw.container import open_vtw
from vidtwin_cli.errors import ContainerError, InputError, VidtwinError, one_line
from vidtwin_cli.codec.options import DecodeOptions, EncodeOptions, VideoOutput
from vidtwin_cli.codec.pipeline import decode_vtw, encode_video
from vidtwin_cli.codec.model_session import ModelSession
from vidtwin_cli.video.io import VideoReader
from vidtwin_cli.codec.weights import DEFAULT_MODEL
from vidtwin_cli.defaults import ENTROPY
from vidtwin_cli.batch.bench_job import BenchRunner, BenchSettings, finished_report
from vidtwin_cli.batch.inputs import VTW_PATTERNS
from vidtwin_cli.media import VIDEO_PATTERNS
from vidtwin_cli.batch.manifest import JobRecord, utc_now

Kind = Literal["encode", "decode", "bench"]


# Settings: the codec options of a command (those `vidtwin encode`/`decode` use), plus its name, its
# output suffix and the files it takes from a folder by default.


@dataclass(frozen=True)
class EncodeSettings:
    options: EncodeOptions = EncodeOptions()

    kind: Kind = "encode"
    suffix: str = ".vtw"
    patterns: tuple[str, ...] = VIDEO_PATTERNS


@dataclass(frozen=True)
class DecodeSettings:
    options: DecodeOptions = DecodeOptions()  # `force`: decode files made with other weights than --model
    output: VideoOutput | None = None
    suffix: str = ".mp4"

    kind: Kind = "decode"
    patterns: tuple[str, ...] = VTW_PATTERNS


Settings = EncodeSettings | DecodeSettings | BenchSettings


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to build its session and run jobs."""

    settings: Settings
    model: str | None
    device: str = "cpu"  # a concrete device (the driver plans "auto")
    precision: str = "auto"
    batch_size: int = 8
    threads: int = 1  # torch intra-op threads of this worker
    compile: bool = False  # torch.compile the transformer blocks (once per worker)


END = object()  # what a backend's `next(jobs, END)` gives when there are no more jobs


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    attempts: int = 1  # including this one


@dataclass(frozen=True)
class Outcome:
    """A finished job: its record, whether the model was loaded for it, or a fatal error for the batch."""

    record: JobRecord | None
    loaded_model: bool = False
    fatal: VidtwinError | None = None  # no file can succeed (the model does not load): stop the batch
    warnings: tuple[str, ...] = ()  # what the pipeline warned about while doing this file


class JobCancelled(BaseException):
    """Raised inside a job whose worker was asked to stop (not an Exception: nothing may swallow it)."""


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Session(ModelSession):
    """A ModelSession that remembers whether (and how) its model load went."""

    def __init__(self, spec: WorkerSpec, warn: Warn) -> None:
        super().__init__(spec.model, spec.device, spec.precision, spec.batch_size, warn, spec.compile)
        self.loads = 0
        self.load_error: VidtwinError | None = None

    def load(self, recorded=None):
        try:
            loaded = super().load(recorded)
        except VidtwinError as e:
            self.load_error = e
            raise
        if not self.loads:
            self.loads = 1
        return loaded


class Worker:
    """Runs jobs of one kind with one lazily loaded model; `cancel()` (from another thread) stops the current one."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._warnings: list[str] = []  # of the current job, handed back with its outcome
        self.session = _Session(spec, self._warnings.append)
        self._sessions = [self.session]
        self._bench = None
        if isinstance(spec.settings, BenchSettings):  # bench: one more session per further precision

            def session_for(precision: str) -> ModelSession:
                self._sessions.append(_Session(dataclasses.replace(spec, precision=precision), self._warnings.append))
                return self._sessions[-1]

            self._bench = BenchRunner(spec.settings, spec.batch_size, self.session, session_for)
        self._cancel = threading.Event()

    @property
    def loads(self) -> int:
        return sum(s.loads for s in self._sessions)

    def cancel(self) -> None:
        self._cancel.set()

    def run(self, job: Job, progress: Progress | None = None) -> Outcome:
        """Do one file; failures of the file become a failed record, never an exception."""
        settings, started, loads_before = self.spec.settings, time.perf_counter(), self.loads
        self._warnings.clear()

        def tick(frames: int) -> None:
            if self._cancel.is_set():
                raise JobCancelled
            if progress:
                progress(frames)

        if self._bench is not None:
            try:  # models and LPIPS: what fails here fails every file alike
                self._bench.prepare()
            except VidtwinError as e:
                return Outcome(None, self.loads > loads_before, fatal=e, warnings=tuple(self._warnings))
        try:
            job.output.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(settings, EncodeSettings):
                frames = encode_video(job.input, job.output, self.session, settings.options, progress=tick).frames
            elif isinstance(settings, DecodeSettings):
                frames = decode_vtw(job.input, job.output, self.session, settings.options, settings.output,
                                    progress=tick).frames  # fmt: skip
            else:
                frames = self._bench.run(job.input, job.output, tick)
            status, error = "ok", None
        except VidtwinError as e:
            if any(s.load_error is e for s in self._sessions) and self._model_is_fixed():
                return Outcome(None, fatal=e, warnings=tuple(self._warnings))
            status, frames, error = "failed", None, one_line(e)
        except Exception as e:  # disk full, out of memory, a library bug: this file fails, the batch goes on
            status, frames, error = "failed", None, f"unexpected {type(e).__name__}: {one_line(e)}"
        record = JobRecord(
            str(job.input), str(job.output), status, _file_size(job.input),
            _file_size(job.output) if status == "ok" else None, frames, round(time.perf_counter() - started, 3),
            error, job.attempts, worker_name(), utc_now(),
        )  # fmt: skip
        return Outcome(record, self.loads > loads_before, warnings=tuple(self._warnings))

    def _model_is_fixed(self) -> bool:
        """Whether every job uses the same model (not decode without --model): then a failed load ends the batch."""
        return self.spec.model is not None or not isinstance(self.spec.settings, DecodeSettings)


def lost(job: Job, reason: str) -> Outcome:
    """The outcome of a job whose worker vanished (killed, out of memory, a crash in native code)."""
    return Outcome(JobRecord(str(job.input), str(job.output), "failed", _file_size(job.input), error=reason,
                             attempts=job.attempts, finished=utc_now()))  # fmt: skip


# --------------------------------------------------------------------------- is it done?


def finished_output(job_input: Path, output: Path, spec: WorkerSpec) -> JobRecord | None:
    """A record for `output` when it exists, verifies, and was made the way `spec` asks; else None.

    .vtw: every check of `vidtwin verify`, plus the same model spec, latent dtype, fit, sampling, key interval
    and the same request in its provenance (quality or step, refinement, trim: `EncodeOptions.provenance`).
    Video: it opens and decodes to the frame count of its source .vtw.
    Bench report: it parses, names this input, and has the same model spec, fit, dtype and precisions.
    """
    if not output.is_file():
        return None
    settings = spec.settings
    try:
        if isinstance(settings, EncodeSettings):
            with open_vtw(output) as reader:
                h = reader.header
            o = settings.options
            wanted = (spec.model or DEFAULT_MODEL, o.dtype, o.fit, o.sample, o.seed if o.sample else None,
                      o.provenance, o.keyint if o.dtype == ENTROPY else None)  # fmt: skip
            if (h.model.spec, h.dtype, h.geometry.fit, h.sampled, h.seed, h.provenance, h.keyint) != wanted:
                return None
            frames = h.video.frame_count
        elif isinstance(settings, BenchSettings):
            frames = finished_report(job_input, output, settings, spec.model)
            if frames is None:
                return None
        else:
            with open_vtw(job_input) as reader:
                frames = reader.header.video.frame_count
            with VideoReader(output) as video:
                if sum(1 for _ in video) != frames:
                    return None
    except (ContainerError, InputError):
        return None
    return JobRecord(str(job_input), str(output), "ok", _file_size(job_input), _file_size(output), frames,
                     finished=utc_now())  # fmt: skip
