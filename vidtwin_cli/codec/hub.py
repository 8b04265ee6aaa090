"""Models on the Hugging Face hub: `org/name[@revision][:file]` -> a local vidtwin model file.

A repository holding our `model.safetensors` is used as it is. Otherwise its official VidTwin
Lightning checkpoint (`OFFICIAL_CHECKPOINT`, or the `.ckpt`/`.safetensors` named after `:`) is
downloaded with huggingface_hub (its cache, HF_HOME, HF_HUB_OFFLINE, tokens and revisions as usual),
converted once through the safe loader of `weights.py`, and the result is kept as
`<cache>/models/<sha256 of the checkpoint>.safetensors`. The hub's ETag of an LFS file is that
sha256, so a later run finds the converted file from the ETag alone and never converts again; the
first conversion checks the download against it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.utils import tqdm as hub_tqdm

from vidtwin_cli.callbacks import Progress
from vidtwin_cli.errors import ModelError, RuntimeFailure, one_line

MODEL_FILENAME = "model.safetensors"  # our own format, used as it is
OFFICIAL_CHECKPOINT = "vidtwin_structure_7_7_8_dynamics_7_8.ckpt"  # the released weights (the `release` preset)
WEIGHT_SUFFIXES = (".ckpt", ".safetensors")
CONVERTED_DIR = "models"  # under the vidtwin cache: converted checkpoints, by content sha256
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PART = r"[A-Za-z0-9_.-]+"
_REVISION = re.compile(rf"{_PART}(/{_PART})*")
_HASH_BLOCK = 1 << 22

# (description, total or None, unit: "bytes" or "steps") -> progress for that stage; the CLI shows a bar per stage
StageProgress = Callable[[str, int | None, str], Progress]


@dataclass(frozen=True)
class HubRef:
    """A parsed hub model id: repository, optional revision (branch, tag or commit) and file."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.repo_id}{rev}{f':{self.filename}' if self.filename else ''}"

    @classmethod
    def parse(cls, spec: str) -> HubRef:
        """`org/name[@revision][:file]`; anything malformed is a ModelError (exit 2) naming the rule broken."""
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        rest, colon, filename = spec.partition(":")
        repo_id, at, revision = rest.partition("@")
        usage = f"invalid hub model id {spec!r}: use org/name[@revision][:file]"
        for label, given, value in (("revision", at, revision), ("file", colon, filename)):
            if given and (not _REVISION.fullmatch(value) or {".", ".."} & set(value.split("/"))):
                raise ModelError(f"{usage} (bad {label} {value!r})")
        if repo_id.count("/") != 1:
            raise ModelError(usage)
        try:
            validate_repo_id(repo_id)
        except HFValidationError as e:
            raise ModelError(f"{usage} ({one_line(e)})") from e
        if filename and not filename.endswith(WEIGHT_SUFFIXES):
            raise ModelError(f"{usage} (the file must be a {' or '.join(WEIGHT_SUFFIXES)})")
        return cls(repo_id, revision or None, filename or None)

    def pinned(self, commit: str | None) -> HubRef:
        """The same id at a fixed commit (what a `.vtw` records)."""
        return HubRef(self.repo_id, commit or self.revision, self.filename)


def looks_like_hub_id(spec: str) -> bool:
    """Whether a `--model` value names a hub model rather than a local file (existing paths are checked first).

    `dir/x.safetensors` is a path; `org/name:x.safetensors` names a file in a repository.
    """
    if spec.startswith(("/", ".", "~")) or "/" not in spec:
        return False
    return ":" in spec or not spec.endswith(WEIGHT_SUFFIXES)


@dataclass(frozen=True)
class HubFile:
    """One file of a repository in the local huggingface_hub cache."""

    ref: HubRef  # with the file name set
    commit: str | None  # the resolved commit of the snapshot
    path: Path
    etag: str | None  # the blob's name: the file's sha256 for LFS files

    @property
    def content_sha256(self) -> str | None:
        """The sha256 the hub vouches for (LFS ETag), when it gave one."""
        return self.etag if self.etag and SHA256_HEX.fullmatch(self.etag) else None


class _HubBar(hub_tqdm):
    """The progress object huggingface_hub drives (`tqdm_class`), forwarded to one `StageProgress` stage."""

    def __init__(self, progress: StageProgress, description: str, *args, **kwargs) -> None:
        self._advance = progress(description, kwargs.get("total"), "bytes")
        kwargs.update(disable=False, file=_Discard())  # our console shows it, not tqdm
        super().__init__(*args, **kwargs)
        if kwargs.get("initial"):
            self._advance(int(kwargs["initial"]))

    def update(self, n: float | None = 1) -> bool | None:
        self._advance(int(n or 0))
        return super().update(n)


class _Discard:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _snapshot_commit(path: Path, filename: str) -> str | None:
    """The commit of `<cache>/models--org--name/snapshots/<commit>/<filename>`."""
    snapshot = path.parents[filename.count("/")]
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def download(ref: HubRef, filename: str, *, local_only: bool = False, progress: StageProgress | None = None) -> HubFile:
    """One file of `ref`'s repository, from the huggingface_hub cache or downloaded into it.

    Raises ModelError (exit 2) for a missing repository, revision or file and for "offline and not
    cached"; EntryNotFoundError-like failures name the file so callers can try another.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = str(HubRef(ref.repo_id, ref.revision))
    bar = functools.partial(_HubBar, progress, f"downloading {filename}") if progress else None
    try:
        with _quiet_hub_log():  # its retry warnings would break our one-line errors; failures raise
            path = Path(hf_hub_download(ref.repo_id, filename, revision=ref.revision, local_files_only=local_only,
                                        tqdm_class=bar))  # fmt: skip
    except LocalEntryNotFoundError as e:
        raise NotCached(name, filename, local_only) from e
    except GatedRepoError as e:
        raise ModelError(f"{name}: the repository is gated; accept its terms on the hub and log in "
                         "(huggingface-cli login or HF_TOKEN)") from e
    except RepositoryNotFoundError as e:
        raise ModelError(f"{name}: no such hub repository (or it is private: log in with "
                         "huggingface-cli login or set HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise ModelError(f"{name}: no revision {ref.revision!r} in {ref.repo_id}") from e
    except EntryNotFoundError as e:
        raise FileMissing(name, filename) from e
    except (HfHubHTTPError, OSError) as e:
        raise RuntimeFailure(f"{name}: downloading {filename} failed ({one_line(e)})") from e
    except ValueError as e:  # huggingface_hub's own validation (HFValidationError and kin)
        raise ModelError(f"{name}: {one_line(e)}") from e
    etag = path.resolve().name if path.is_symlink() else None
    return HubFile(HubRef(ref.repo_id, ref.revision, filename), _snapshot_commit(path, filename), path, etag)


class FileMissing(ModelError):
    """The repository (at that revision) has no such file."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(f"{name}: the repository has no {filename}")
        self.filename = filename


class NotCached(ModelError):
    """The file is not in the local hub cache and may not (or cannot) be downloaded."""

    def __init__(self, name: str, filename: str, local_only: bool) -> None:
        why = ("it is not downloaded by the tool for a file's sake; pass --model to fetch it" if local_only else
               "offline (HF_HUB_OFFLINE) or the hub cannot be reached; connect once, or pass a local .safetensors")
        super().__init__(f"{name}: {filename} is not in the local hub cache ({why})")
        self.filename = filename


@contextlib.contextmanager
def _quiet_hub_log() -> Iterator[None]:
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_log.setLevel(level)


def fetch_weights(ref: HubRef, *, local_only: bool = False, progress: StageProgress | None = None) -> HubFile:
    """The weights file of `ref`: the named file, else `model.safetensors`, else the official checkpoint."""
    if ref.filename:
        return download(ref, ref.filename, local_only=local_only, progress=progress)
    failures: list[ModelError] = []
    for filename in (MODEL_FILENAME, OFFICIAL_CHECKPOINT):
        unreachable = any(isinstance(e, NotCached) for e in failures)  # then only look in the cache: no second wait
        try:
            return download(ref, filename, local_only=local_only or unreachable, progress=progress)
        except (FileMissing, NotCached) as e:
            failures.append(e)
    if any(isinstance(e, NotCached) for e in failures):
        raise next(e for e in failures if isinstance(e, NotCached))
    raise ModelError(f"{HubRef(ref.repo_id, ref.revision)}: the repository has neither {MODEL_FILENAME} nor "
                     f"{OFFICIAL_CHECKPOINT}; name its weights file as {ref.repo_id}:FILE")


def file_sha256(path: Path, progress: StageProgress | None = None, description: str = "checking") -> str:
    """sha256 of a file's bytes, read in blocks (reported as bytes to `progress`)."""
    advance = progress(description, path.stat().st_size, "bytes") if progress else None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            if advance:
                advance(len(block))
    return h.hexdigest()


def converted_path(cache: Path, source_sha256: str) -> Path:
    """Where the conversion of a checkpoint with that content hash is kept."""
    return cache / CONVERTED_DIR / f"{source_sha256}.safetensors"


def touch(path: Path) -> None:
    """Record a use (the modification time is what `vidtwin models list` shows as last used)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves the model
        pass
