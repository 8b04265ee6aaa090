"""The models this machine has: bundled, presets, and hub models in the caches (`vidtwin models`).

Hub models live in two places: our own `model.safetensors` files stay in huggingface_hub's cache as
downloaded; official checkpoints are downloaded there too and converted once into the vidtwin cache
(`hub.converted_path`). Listing reads only file headers; removing deletes both the conversions and
the hub cache's revisions of that repository.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models import PRESETS

from vidtwin_cli.cache import default_cache_dir
from vidtwin_cli.codec.hub import CONVERTED_DIR, HubRef, looks_like_hub_id
from vidtwin_cli.codec.weights import BUNDLED_MODEL, DEFAULT_MODEL, MODEL_FORMAT
from vidtwin_cli.errors import InputError, ModelError, UsageError
from vidtwin_cli.tagged_file import read_metadata


@dataclass(frozen=True)
class ModelEntry:
    """One model `--model` can name without a download."""

    id: str  # what --model takes
    kind: str  # "bundled", "preset", "hub" (our format, in the hub cache) or "converted" (an official checkpoint)
    source: str  # where it came from: a file, "random init", or repo:file@commit
    bytes: int | None = None  # on disk (None: presets, built on load)
    weights_sha256: str | None = None  # the weights fingerprint (None: presets)
    last_used: float | None = None  # POSIX seconds (conversions: touched on each load; hub files: last access)
    path: str | None = None
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["last_used"] = None if self.last_used is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used))
        return out


def _hub_cache_info():
    """huggingface_hub's cache scan, or None when there is no cache yet."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir()
    except CacheNotFound:
        return None


def list_models(cache: Path | None = None) -> list[ModelEntry]:
    """Bundled, presets, our model files in the hub cache, and converted official checkpoints."""
    bundled = read_metadata(BUNDLED_MODEL).get("weights_sha256")
    entries = [ModelEntry(DEFAULT_MODEL, "bundled", "vidtwin package",
                          BUNDLED_MODEL.stat().st_size, bundled, None, str(BUNDLED_MODEL))]  # fmt: skip
    entries += [ModelEntry(name, "preset", "random init") for name in PRESETS]
    info = _hub_cache_info()
    for repo in sorted(info.repos, key=lambda r: r.repo_id) if info else []:
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified):
            for file in revision.files:
                if file.file_name.endswith(".safetensors") and _format(file.file_path) == MODEL_FORMAT:
                    meta = read_metadata(file.file_path)
                    name = str(HubRef(repo.repo_id, None, None if file.file_name == "model.safetensors"
                                      else str(file.file_path.relative_to(revision.snapshot_path))))  # fmt: skip
                    entries.append(ModelEntry(name, "hub", f"{name}@{revision.commit_hash}", file.size_on_disk,
                                              meta.get("weights_sha256"), file.blob_last_accessed,
                                              str(file.file_path), revision.commit_hash))  # fmt: skip
    for path in sorted((cache or default_cache_dir()).joinpath(CONVERTED_DIR).glob("*.safetensors")):
        meta = read_metadata(path)
        if meta.get("format") != MODEL_FORMAT:
            continue
        repo, file, commit = meta.get("hub_repo", "?"), meta.get("hub_file", "?"), meta.get("hub_commit") or None
        entries.append(ModelEntry(repo, "converted", f"{repo}:{file}@{commit or '?'}", path.stat().st_size,
                                  meta.get("weights_sha256"), path.stat().st_mtime, str(path), commit))  # fmt: skip
    return entries


def _format(path: Path) -> str | None:
    try:
        return read_metadata(path).get("format")
    except InputError:
        return None


def remove_model(spec: str, cache: Path | None = None) -> list[str]:
    """Delete a hub model from both caches (`org/name`: every revision; `org/name@rev`: one). Returns what went."""
    if spec == DEFAULT_MODEL or spec in PRESETS:
        raise UsageError(f"{spec!r} is part of vidtwin, not a cached download; nothing to remove")
    if not looks_like_hub_id(spec):
        raise UsageError(f"{spec!r} is not a hub model id (org/name[@revision]); delete local files yourself")
    ref = HubRef.parse(spec)
    info = _hub_cache_info()
    repo = next((r for r in info.repos if r.repo_id == ref.repo_id and r.repo_type == "model"), None) if info else None
    commits = _matching_commits(repo, ref.revision)
    removed = []
    for path in sorted((cache or default_cache_dir()).joinpath(CONVERTED_DIR).glob("*.safetensors")):
        meta = read_metadata(path)
        if meta.get("hub_repo") == ref.repo_id and (ref.revision is None or meta.get("hub_commit") in commits
                                                    or meta.get("hub_commit", "").startswith(ref.revision)):  # fmt: skip
            path.unlink()
            removed.append(str(path))
    if repo is not None and commits:
        strategy = info.delete_revisions(*commits)
        strategy.execute()
        removed += [f"{ref.repo_id}@{c}" for c in sorted(commits)]
    if not removed:
        raise ModelError(f"{spec}: not in the caches (see 'vidtwin models list')")
    return removed


def _matching_commits(repo, revision: str | None) -> set[str]:
    """The cached commits of `repo` that `revision` names: all, a commit (prefix) or a cached branch/tag."""
    if repo is None:
        return set()
    if revision is None:
        return {r.commit_hash for r in repo.revisions}
    return {r.commit_hash for r in repo.revisions if r.commit_hash.startswith(revision) or revision in r.refs}
