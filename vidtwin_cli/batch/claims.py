"""Claims: which process works on which output when several batches share one OUT_DIR (docs/batch.md).

A claim is a small file made with O_CREAT|O_EXCL, which is atomic on local filesystems and on NFS
v3 and later; fcntl/flock locks are not used, since network filesystems do not honour them
reliably. The file names its holder (host, pid, a token of the claim), and its mtime is a heartbeat
that a thread of the holder refreshes while the claim is held.

A claim is stale when its holder was a process of this host that is gone, or when its heartbeat is
older than the timeout (which also covers a pid that was reused since). Ages are measured against
the filesystem's own clock (the mtime a new file gets there), so machines whose clocks disagree
still agree on how old a heartbeat is.

Replacing a stale claim first takes a second O_EXCL file named after the stale claim's token: of
several processes that find the same claim stale, only the one that makes that file may replace
the claim, and only after reading the same token there again. It writes its own claim beside it and
renames that over the stale one (atomic, also on NFS), so the name is never free in between: the
process that holds it is the one that knows what it replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import string
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vidtwin_cli.atomic import process_alive
from vidtwin_cli.errors import RuntimeFailure

CLAIMS_FOLDER = ".vidtwin-claims"  # in OUT_DIR: hidden, so never taken for an input
DEFAULT_TIMEOUT_S = 120.0
BEATS_PER_TIMEOUT = 8  # a live claim's heartbeat is never older than timeout / 8 (plus filesystem caching)
TOKEN_CHARS = 16  # hex digits of a claim's token (it names takeover markers, so nothing else is accepted)
TAKEOVER = ".takeover-"  # NAME.takeover-TOKEN-N: who replaces the stale claim TOKEN (N: after a taker died)


class ClaimError(RuntimeFailure):
    """A claim file cannot be written (a full disk, a read-only folder)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as written in the claim file."""

    host: str
    pid: int
    claim: str  # token of this one claim
    since: str  # UTC, ISO 8601

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True)
class Seen:
    """A claim file as read by someone else: its holder (None while being written) and its age."""

    holder: Holder | None
    identity: str  # the claim token, or the file's inode and mtime when it cannot be parsed yet
    age_s: float


@dataclass(frozen=True)
class Taken:
    """A claim this process now holds."""

    path: Path
    replaced: Seen | None = None  # the stale claim it replaced, if any


class Claims:
    """The claims of this process; `take` and `release` paths, a thread keeps the held ones fresh.

        claims = Claims(timeout_s=120)
        if (taken := claims.take(out / ".vidtwin-claims" / "x.claim")) is not None:
            ...  # nobody else works on x until release
            claims.release(taken.path)
        claims.close()
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError("the claim timeout must be positive")
        self.timeout_s = timeout_s
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._held: dict[Path, str] = {}  # path -> the claim token written there
        self._clock: dict[Path, float] = {}  # folder -> its filesystem's clock minus ours
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="vidtwin-claims", daemon=True)
        self._beat.start()

    @property
    def beat_s(self) -> float:
        return self.timeout_s / BEATS_PER_TIMEOUT

    def take(self, path: Path) -> Taken | None:
        """Claim `path`; None when a live process holds it. Raises ClaimError when it cannot be written."""
        for _ in range(3):  # a claim can be released between two looks; a few rounds settle it
            if self._create(path):
                return Taken(path)
            seen = self.look(path)
            if seen is None:
                continue  # released in between: try again
            if self.stale(seen) and self._replace_stale(path, seen):
                return Taken(path, seen)
            return None
        return None

    def release(self, path: Path) -> None:
        """Give up a claim; one that another process took over (we were judged dead) is left alone."""
        token = self._held.get(path)
        if token is None:
            return
        seen = self.look(path)
        if seen is not None and (seen.identity == token or seen.holder is None):  # None: ours, cut short mid-write
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with self._lock:  # only now, so that a release cut short by a signal is done again by `release_all`
            self._held.pop(path, None)

    def release_all(self) -> None:
        for path in list(self._held):
            self.release(path)

    def close(self) -> None:
        """Release every claim still held and stop the heartbeat."""
        self._stop.set()
        self.release_all()

    def look(self, path: Path) -> Seen | None:
        """The claim at `path` as it is now, or None when there is none."""
        try:
            with open(path, "rb") as f:  # open, not stat: NFS revalidates attributes on open
                data, info = f.read(4096), os.fstat(f.fileno())
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ClaimError(f"{path}: cannot read the claim file ({e.strerror or e})") from e
        holder = _holder(data)
        identity = holder.claim if holder else f"{info.st_ino}-{info.st_mtime_ns}"
        return Seen(holder, identity, self._now(path.parent) - info.st_mtime)

    def stale(self, seen: Seen) -> bool:
        """Whether the claim's holder is gone: a dead process of this host, or a heartbeat past the timeout."""
        holder = seen.holder
        if holder is not None and holder.host == self.host and not process_alive(holder.pid):
            return True
        return seen.age_s > self.timeout_s

    # ------------------------------------------------------------------ the file operations

    def _create(self, path: Path) -> bool:
        try:
            fd = _create_exclusive(path)
        except FileExistsError:
            return False
        token, record = self._new_record()
        with self._lock:  # at once: a run stopped while writing still releases the file
            self._held[path] = token
        try:
            _write_record(fd, record)
        except OSError as e:
            self.release(path)
            raise ClaimError(f"{path}: cannot write the claim file ({e.strerror or e})") from e
        return True

    def _replace_stale(self, path: Path, seen: Seen) -> bool:
        """Put our claim in place of the stale claim `seen`; False when another taker does, or it changed."""
        for attempt in range(3):
            marker = path.with_name(f"{path.name}{TAKEOVER}{seen.identity}-{attempt}")
            try:
                os.close(_create_exclusive(marker))
                break
            except FileExistsError:
                other = self.look(marker)
                if other is not None and other.age_s <= self.timeout_s:  # a live taker is at work
                    return False
        else:
            return False
        try:
            again = self.look(path)
            if again is None or again.identity != seen.identity:
                return False  # released or replaced meanwhile: the caller looks again later
            token, record = self._new_record()
            ours = path.with_name(f"{path.name}.new-{token}")
            try:
                _write_record(_create_exclusive(ours), record)
                with self._lock:
                    self._held[path] = token
                os.replace(ours, path)
            except OSError as e:
                with self._lock:
                    self._held.pop(path, None)
                ours.unlink(missing_ok=True)
                raise ClaimError(f"{path}: cannot replace the stale claim file ({e.strerror or e})") from e
            return True
        finally:
            for n in range(attempt + 1):
                path.with_name(f"{path.name}{TAKEOVER}{seen.identity}-{n}").unlink(missing_ok=True)

    def _new_record(self) -> tuple[str, bytes]:
        """A fresh claim token and the claim file's content naming this process."""
        token = secrets.token_hex(TOKEN_CHARS // 2)
        holder = Holder(self.host, self.pid, token, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return token, json.dumps(asdict(holder)).encode()

    def _now(self, folder: Path) -> float:
        """Now by the clock of the filesystem holding `folder` (measured once per folder)."""
        if folder not in self._clock:
            probe = folder / f".clock-{self.host}-{self.pid}-{secrets.token_hex(4)}"
            fd = _create_exclusive(probe)
            try:
                self._clock[folder] = os.fstat(fd).st_mtime - time.time()
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        return time.time() + self._clock[folder]

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.beat_s):
            with self._lock:
                held = list(self._held)
            for path in held:
                with contextlib.suppress(OSError):  # released meanwhile, or taken over: nothing to refresh
                    os.utime(path)


def _holder(data: bytes) -> Holder | None:
    """The holder a claim file names; None when it is empty or partial (being written) or not a claim."""
    try:
        holder = Holder(**json.loads(data))
    except (ValueError, TypeError):
        return None
    fields = (holder.host, holder.claim, holder.since)
    if not (all(isinstance(f, str) for f in fields) and type(holder.pid) is int and 0 < holder.pid < 2**31):
        return None
    return holder if len(holder.claim) == TOKEN_CHARS and set(holder.claim) <= set(string.hexdigits) else None


def _write_record(fd: int, record: bytes) -> None:
    try:
        os.write(fd, record)
        os.fsync(fd)
    finally:
        os.close(fd)


def output_claim(out_dir: Path, output: Path) -> Path:
    """The claim file of `output`: named after its path below `out_dir`, the same on every machine that mounts it."""
    rel = output.relative_to(out_dir).as_posix()
    return out_dir / CLAIMS_FOLDER / f"{hashlib.sha256(rel.encode()).hexdigest()[:32]}.claim"


def _create_exclusive(path: Path) -> int:
    """O_CREAT|O_EXCL, making the folder when it is missing; FileExistsError when the file exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            return os.open(path, flags, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o644)
    except FileExistsError:
        raise
    except OSError as e:
        raise ClaimError(f"{path}: cannot create the claim file ({e.strerror or e})") from e
