"""The job state of a batch: a JSON-lines file with one record per input (docs/batch.md).

During a run each finished file appends one line (flushed and fsynced), so a crash loses nothing
that finished; on open and on close the file is rewritten atomically with one line per input. When
an input appears several times, the last line wins, and a torn last line (a crash mid-write) is
dropped with a warning. The outputs on disk stay the truth: a rerun verifies them whatever the
manifest says. So a manifest that cannot be written (a full disk) costs a warning, not the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.atomic import atomic_output
from vidtwin_cli.errors import InputError, RuntimeFailure

Status = Literal["ok", "failed"]


@dataclass(frozen=True)
class JobRecord:
    """What happened to one input the last time it was worked on (or found done)."""

    input: str
    output: str
    status: Status
    input_bytes: int | None = None
    output_bytes: int | None = None
    frames: int | None = None
    seconds: float | None = None  # wall time of the file in its worker
    error: str | None = None  # the one-line reason, when failed
    attempts: int = 0  # runs that worked on this input (a file found done adds none)
    worker: str | None = None  # host:pid
    finished: str | None = None  # UTC, ISO 8601

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class JobLog:
    """Open (or create) the manifest at `path`; `put` records, `close` compacts.

        with JobLog(out_dir / "batch-encode.jsonl", warn) as log:
            previous = log.get(str(src))
            log.put(JobRecord(str(src), str(dst), "ok", ...))
    """

    def __init__(self, path: Path, warn: Warn) -> None:
        self.path = Path(path)
        self.warn = warn
        self.unwritable: str | None = None  # why the manifest could not be written, once it could not
        self.records: dict[str, JobRecord] = {}
        if self.path.is_dir():
            raise InputError(f"--manifest {self.path} is a directory")
        if not self.path.parent.is_dir():
            raise InputError(f"--manifest {self.path}: folder {self.path.parent} does not exist")
        if self.path.exists():
            self._load(warn)
        self._compact()
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")

    def _load(self, warn: Warn) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{self.path}: cannot read the batch manifest ({e})") from e
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = JobRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as e:
                where = "its last line (torn by a crash)" if number == len(lines) else f"line {number}"
                warn(f"{self.path}: ignoring {where}, not a job record ({e})")
                continue
            self.records[record.input] = record

    def _compact(self) -> None:
        try:
            with atomic_output(self.path) as f:
                f.write(_lines(self.records.values()).encode())
        except RuntimeFailure as e:  # atomic_output's translation of a full disk, a quota ...
            self._unwritable(str(e))

    def _unwritable(self, reason: str) -> None:
        if self.unwritable is None:
            self.warn(f"{self.path}: the manifest cannot be written ({reason}); the batch goes on, and a "
                      "rerun finds finished outputs by verifying them")
        self.unwritable = reason

    def get(self, input: str) -> JobRecord | None:
        return self.records.get(input)

    def put(self, record: JobRecord) -> None:
        """Record one input's outcome durably (one appended line)."""
        self.records[record.input] = record
        assert self._file is not None, "put after close"
        try:
            self._file.write(_lines([record]))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            self._unwritable(e.strerror or str(e))

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a failed flush was reported by `put` already
                self._file.close()
            self._file = None
            self._compact()

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lines(records: Iterable[JobRecord]) -> str:
    return "".join(json.dumps(r.to_dict(), separators=(", ", ": ")) + "\n" for r in records)
