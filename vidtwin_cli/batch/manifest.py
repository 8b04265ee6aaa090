"""The job state of a batch: a JSON-lines file with one record per input (docs/batch.md).

Several processes may share one manifest (batches started on the same OUT_DIR, on one machine or on
several that mount it). So a record is never appended: `put` takes a short lock (a claim file beside
the manifest, `claims.py`), reads the file as it is now, sets its record and replaces the file
atomically. Records of every process survive, and a reader always sees a whole file. When an old
file holds an input several times, the last line wins, and a torn last line is dropped with a
warning. The outputs on disk stay the truth: a rerun verifies them whatever the manifest says. So a
manifest that cannot be written (a full disk) costs a warning, not the batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.atomic import atomic_output
from vidtwin_cli.batch.claims import ClaimError, Claims
from vidtwin_cli.errors import InputError, RuntimeFailure

Status = Literal["ok", "failed"]
LOCK_POLL_S = 0.02  # how often a process waiting for the manifest lock looks again


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
    """The manifest at `path`: `get` and `put` records, `refresh` reads what other processes wrote.

        log = JobLog(out_dir / "batch-encode.jsonl", warn, claims)
        previous = log.get(str(src))
        log.put(JobRecord(str(src), str(dst), "ok", ...))
    """

    def __init__(self, path: Path, warn: Warn, claims: Claims) -> None:
        self.path = Path(path)
        self.warn, self.claims = warn, claims
        self.unwritable: str | None = None  # why the manifest could not be written, once it could not
        self.records: dict[str, JobRecord] = {}
        if self.path.is_dir():
            raise InputError(f"--manifest {self.path} is a directory")
        if not self.path.parent.is_dir():
            raise InputError(f"--manifest {self.path}: folder {self.path.parent} does not exist")
        self._version: tuple[int, int, int] | None = None  # (inode, size, mtime) of the file read last
        self._mine: set[str] = set()  # inputs this process recorded
        self.refresh(warn)
        self.initial = dict(self.records)  # as this process found them
        self._write()  # one line per input from the start (an old file's duplicates and torn line go)

    def refresh(self, warn: Warn | None = None) -> None:
        """Take in the records other processes wrote since the last look; `warn` about lines that are no records."""
        try:
            with open(self.path, "rb") as f:  # open, not stat: NFS revalidates a file on open
                info = os.fstat(f.fileno())
                version = (info.st_ino, info.st_size, info.st_mtime_ns)
                if version == self._version:
                    return
                lines = f.read().decode("utf-8").splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{self.path}: cannot read the batch manifest ({e})") from e
        self._version = version
        found: dict[str, JobRecord] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = JobRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError) as e:
                if warn:
                    where = "its last line (torn by a crash)" if number == len(lines) else f"line {number}"
                    warn(f"{self.path}: ignoring {where}, not a job record ({e})")
                continue
            found[record.input] = record
        self.records = {**self.records, **found, **{i: self.records[i] for i in self._mine}}

    def get(self, input: str) -> JobRecord | None:
        return self.records.get(input)

    def by_other(self, input: str) -> JobRecord | None:
        """The record of `input` when another process wrote it after this one opened the manifest."""
        record = self.records.get(input)
        return record if input not in self._mine and record != self.initial.get(input) else None

    def put(self, record: JobRecord) -> None:
        """Record one input's outcome durably, merged with the records of every other process."""
        self.records[record.input] = record
        self._mine.add(record.input)
        self._write()

    def _write(self) -> None:
        lock = self.path.with_name(f".{self.path.name}-lock")
        try:
            while self.claims.take(lock) is None:  # held for one read and one write: milliseconds
                time.sleep(LOCK_POLL_S)
        except ClaimError as e:
            self._unwritable(str(e))
            return
        try:
            self.refresh()
            with atomic_output(self.path) as f:
                f.write(_lines(self.records.values()).encode())
        except RuntimeFailure as e:  # atomic_output's translation of a full disk, a quota ...
            self._unwritable(str(e))
        finally:
            self.claims.release(lock)

    def _unwritable(self, reason: str) -> None:
        if self.unwritable is None:
            self.warn(f"{self.path}: the manifest cannot be written ({reason}); the batch goes on, and a "
                      "rerun finds finished outputs by verifying them")
        self.unwritable = reason


def _lines(records: Iterable[JobRecord]) -> str:
    return "".join(json.dumps(r.to_dict(), separators=(", ", ": ")) + "\n" for r in records)
