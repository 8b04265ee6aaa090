"""Model weights on disk: our safetensors format, official checkpoints, presets and hub ids.

`--model` accepts `default` (the bundled trained model), a preset name (random init, seeded), a local
`.safetensors` path or a hub id `org/name[@revision][:file]` (`hub.py`; official checkpoints are converted
once and cached). This is the one module that resolves model specs, including the one a `.vtw` records,
which is only ever looked up locally (`resolve_recorded_model`).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from models import PRESETS, VidTwinAE, VidTwinConfig
from models.checkpoint import from_official, load_strict, official_mismatch

from vidtwin_cli.cache import default_cache_dir
from vidtwin_cli.codec.runtime import PRECISIONS
from vidtwin_cli.defaults import WEIGHT_DTYPES
from vidtwin_cli.codec.hub import (
    HubFile, HubRef, NotCached, FileMissing, StageProgress, converted_path, fetch_weights, file_sha256,
    looks_like_hub_id, touch,
)  # fmt: skip
from vidtwin_cli.tagged_file import read_metadata, read_tagged, write_tagged
from vidtwin_cli.errors import InputError, ModelError

MODEL_FORMAT = "vidtwin-ae"
BUNDLED_MODEL = Path(__file__).parents[1] / "data" / "vidtwin-small.safetensors"
SAMPLE_CLIP = Path(__file__).parents[1] / "data" / "sample.mp4"  # our own procedural footage (scripts/make_sample_clip.py)
DEFAULT_MODEL = "default"  # the trained small model shipped in the package (docs/model-card.md)
PRESET_SEED = 0
M = TypeVar("M", bound=torch.nn.Module)


@dataclass
class LoadedModel:
    """A ready model (eval mode, fp32, CPU) and where it came from.

    The weights' fingerprint is taken on load, before a `ModelRunner` casts or packs them.
    """

    model: VidTwinAE
    spec: str  # what the user passed
    source: str  # "bundled", "preset", "file" or "hub"
    path: Path | None = None
    metadata: dict[str, str] | None = None
    commit: str | None = None  # hub models: the resolved commit
    sha256: str = field(init=False)  # see `weights_sha256`

    def __post_init__(self) -> None:
        self.sha256 = weights_sha256(self.model)

    @property
    def config(self) -> VidTwinConfig:
        return self.model.config


def untrained_note(spec: str) -> str:
    """What to tell a user who picked a preset: its weights are seeded random numbers, not a codec."""
    return (f"model {spec!r} is an untrained preset (seeded random weights): its output is not a compressed "
            "copy of the video; leave out --model for the bundled trained model")


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor in sorted key order: name, shape, float32 bytes.

    Hashing the float32 form makes the fingerprint independent of the storage dtype: an fp16
    file and an fp32 file holding the same (fp16-representable) values agree.
    """
    h = hashlib.sha256()
    for key, t in sorted(tensors.items()):
        h.update(f"{key}:{tuple(t.shape)}\0".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().data)
    return h.hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """The fingerprint of a model's weights (`tensors_sha256` of its state dict)."""
    return tensors_sha256(model.state_dict())


def stored_tensors(model: torch.nn.Module, dtype: str) -> dict[str, torch.Tensor]:
    """A model's weights as a file stores them: on the CPU, contiguous, as `dtype` (one of WEIGHT_DTYPES)."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    return {k: v.detach().to("cpu", PRECISIONS[dtype]).contiguous() for k, v in model.state_dict().items()}


def save_model(path: Path, model: VidTwinAE, dtype: str = "fp32", metadata: dict[str, str] | None = None) -> str:
    """Write weights + config (+ extra string metadata) atomically; returns the weights sha256."""
    tensors = stored_tensors(model, dtype)
    sha = tensors_sha256(tensors)  # what a reader gets back: the stored values
    meta = {
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "weights_sha256": sha,
        "weights_dtype": dtype,
        **(metadata or {}),
    }
    write_tagged(path, tensors, MODEL_FORMAT, meta)
    return sha


def read_model_file(path: Path) -> tuple[VidTwinConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, tensors and metadata of one of our model files. Raises InputError/ModelError."""
    tensors, meta = read_tagged(path, MODEL_FORMAT, "model", "convert official checkpoints with 'vidtwin convert'")
    try:
        config = VidTwinConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: bad model config in metadata ({e})") from e
    return config, tensors, meta


def build(family: Callable[[Any], M], config: Any, state_dict: dict[str, torch.Tensor] | None = None) -> M:
    """An eval-mode fp32 `family(config)` holding `state_dict` (strictly), or random weights seeded
    with PRESET_SEED when none are given. Weights that do not fit are a ModelError."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRESET_SEED)
        model = family(config)
    if state_dict is not None:
        try:
            load_strict(model, {k: v.to(torch.float32) for k, v in state_dict.items()})
        except ValueError as e:
            raise ModelError(f"{type(model).__name__} {e}") from e
    return model.eval()


def build_model(config: VidTwinConfig, state_dict: dict[str, torch.Tensor] | None = None) -> VidTwinAE:
    """A VidTwin autoencoder, as `build` makes it."""
    return build(VidTwinAE, config, state_dict)


def _load_file(spec: str, source: str, path: Path, commit: str | None = None) -> LoadedModel:
    config, tensors, meta = read_model_file(path)
    loaded = LoadedModel(build_model(config, tensors), spec, source, path, meta, commit)
    recorded = meta.get("weights_sha256")
    if recorded is not None and recorded != loaded.sha256:
        raise ModelError(f"{path}: weights do not match their recorded sha256 (corrupt or edited file)")
    return loaded


def resolve_model(
    spec: str | None = None,
    *,
    cache: Path | None = None,
    local_only: bool = False,
    progress: StageProgress | None = None,
) -> LoadedModel:
    """Load the model named by `spec` (None: the default model).

    Hub models come from huggingface_hub's cache (downloaded first unless `local_only`); official
    checkpoints are converted once into `cache` (default: `cache.default_cache_dir()`).
    """
    spec = spec or DEFAULT_MODEL
    if spec == DEFAULT_MODEL:
        return _load_file(spec, "bundled", BUNDLED_MODEL)
    if spec in PRESETS:
        return LoadedModel(build_model(PRESETS[spec]), spec, "preset")
    path = Path(spec)
    if path.exists() or not looks_like_hub_id(spec):
        if path.exists() or path.suffix == ".safetensors":
            return _load_file(spec, "file", path)
        raise ModelError(f"unknown model {spec!r}: use default, a preset ({', '.join(PRESETS)}), "
                         "a .safetensors path or a hub id org/name[@rev][:file]")
    ref = HubRef.parse(spec)
    hub_file = fetch_weights(ref, local_only=local_only, progress=progress)
    return _load_file(spec, "hub", hub_model_file(hub_file, cache or default_cache_dir(), progress), hub_file.commit)


def resolve_recorded_model(spec: str, commit: str | None = None, cache: Path | None = None, *,
                           recorded_in: str = "this .vtw", flag: str = "--model") -> LoadedModel:  # fmt: skip
    """The model a file records, only if it is already local: bundled, a preset or a cached hub model.

    A file (a .vtw, a DiT file: `recorded_in`) never makes the tool download anything or open a path it
    names; for those the user passes the model with `flag`.
    """
    if spec == DEFAULT_MODEL or spec in PRESETS:
        return resolve_model(spec)
    if not looks_like_hub_id(spec):
        raise ModelError(f"{recorded_in} records the model file {spec!r}; a file never chooses a file to load: "
                         f"pass {flag} with the model it was made with")
    try:
        return resolve_model(str(HubRef.parse(spec).pinned(commit)), cache=cache, local_only=True)
    except (NotCached, FileMissing) as e:
        at = f" at commit {commit[:12]}" if commit else ""
        raise ModelError(f"{recorded_in} records the hub model {spec!r}{at}, which is not in the local cache; a file "
                         f"never triggers a download: pass {flag} {spec} to fetch it") from e


def hub_model_file(hub_file: HubFile, cache: Path, progress: StageProgress | None = None) -> Path:
    """Our model file for a downloaded hub file: itself if it is one, else its cached conversion."""
    if hub_file.path.suffix == ".safetensors" and _is_model_file(hub_file.path):
        return hub_file.path
    known = hub_file.content_sha256
    if known and (done := converted_path(cache, known)).is_file():
        touch(done)
        return done
    sha = file_sha256(hub_file.path, progress, f"checking {hub_file.ref.filename}")
    if known and sha != known:
        raise ModelError(f"{hub_file.ref}: the downloaded file's sha256 {sha[:12]} differs from the hub's "
                         f"{known[:12]} (corrupt download); remove it with 'vidtwin models rm {hub_file.ref.repo_id}' "
                         "and retry")
    out = converted_path(cache, sha)
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_official(hub_file.path, out, {"hub_repo": hub_file.ref.repo_id, "hub_file": str(hub_file.ref.filename),
                                              "hub_commit": hub_file.commit or "", "source_sha256": sha},
                         progress)  # fmt: skip
    touch(out)
    return out


def _is_model_file(path: Path) -> bool:
    return read_metadata(path).get("format") == MODEL_FORMAT


def convert_official(
    src: Path, out: Path, metadata: dict[str, str] | None = None, progress: StageProgress | None = None
) -> tuple[str, VidTwinAE]:
    """An official checkpoint -> our model file at `out`, the preset picked by its tables and shapes.

    Returns the preset name and the model.
    """
    advance = progress(f"converting {src.name}", 3, "steps") if progress else (lambda n: None)
    raw = read_official_state(src)
    advance(1)
    preset = identify_preset(raw, src)
    model = build_model(PRESETS[preset], _from_official(raw, PRESETS[preset], src))
    advance(1)
    save_model(out, model, "fp32", {"converted_from": src.name, "preset": preset, **(metadata or {})})
    advance(1)
    return preset, model


def identify_preset(raw: dict[str, torch.Tensor], path: Path) -> str:
    """The preset whose position tables, keys and shapes an official state dict fits; ModelError if none."""
    if not any(k.startswith(("encoder.", "decoder.")) for k in raw):
        raise ModelError(f"{path}: not a VidTwin checkpoint (no encoder/decoder weights inside)")
    reasons = {name: official_mismatch(raw, cfg) for name, cfg in PRESETS.items()}
    matches = [name for name, why in reasons.items() if why is None]
    if not matches:
        raise ModelError(f"{path}: a checkpoint of no known VidTwin configuration (release: {reasons['release']}); "
                         "convert it with 'vidtwin convert --config CONFIG.json'")
    return matches[0]


def read_official_state(path: Path) -> dict[str, torch.Tensor]:
    """The raw state dict of an official Lightning `.ckpt`, a bare state dict or a `.safetensors`, loaded safely."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise InputError(f"{path}: unreadable safetensors file ({e})") from e
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # torch's weights_only refusal of a non-allow-listed class
            raise InputError(f"{path}: refused, the checkpoint needs arbitrary code to unpickle "
                             "(only plain tensors/containers are loaded, weights_only=True)") from e
        raise InputError(f"{path}: not a readable torch checkpoint ({str(e).splitlines()[0]})") from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise InputError(f"{path}: not a readable torch checkpoint ({e})") from e
    raw = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise InputError(f"{path}: no tensor state_dict inside")
    return raw


def _from_official(raw: dict[str, torch.Tensor], config: VidTwinConfig, path: Path) -> dict[str, torch.Tensor]:
    try:
        return from_official(raw, config)
    except ValueError as e:
        raise ModelError(f"{path}: {e}") from e


def read_official_checkpoint(path: Path, config: VidTwinConfig) -> dict[str, torch.Tensor]:
    """Load an official Lightning `.ckpt` (or bare state dict) safely and map it to our names for `config`."""
    return _from_official(read_official_state(path), config, Path(path))
