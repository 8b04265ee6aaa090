"""Model weights on disk: our safetensors format, official checkpoints, presets and hub ids.

`--model` accepts `default` (the bundled trained model), a preset name (random init, seeded), a local `.safetensors` path or a hub
id `org/name[@revision]`. This is the one module that resolves model specs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from models import PRESETS, VidTwinAE, VidTwinConfig
from models.checkpoint import from_official, load_strict

from vidtwin_cli.tagged_file import read_tagged, write_tagged
from vidtwin_cli.errors import InputError, ModelError

MODEL_FORMAT = "vidtwin-ae"
MODEL_FILENAME = "model.safetensors"  # the file looked up in a hub repository
BUNDLED_MODEL = Path(__file__).parents[1] / "data" / "vidtwin-small.safetensors"
SAMPLE_CLIP = Path(__file__).parents[1] / "data" / "sample.mp4"  # our own procedural footage (scripts/make_sample_clip.py)
DEFAULT_MODEL = "default"  # the trained small model shipped in the package (docs/model-card.md)
PRESET_SEED = 0
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
WEIGHT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A ready model (eval mode, fp32, CPU) and where it came from.

    The weights' fingerprint is taken on load, before a `ModelRunner` casts or packs them.
    """

    model: VidTwinAE
    spec: str  # what the user passed
    source: str  # "preset", "file" or "hub"
    path: Path | None = None
    metadata: dict[str, str] | None = None
    sha256: str = field(init=False)  # see `weights_sha256`

    def __post_init__(self) -> None:
        self.sha256 = weights_sha256(self.model)

    @property
    def config(self) -> VidTwinConfig:
        return self.model.config


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


def save_model(path: Path, model: VidTwinAE, dtype: str = "fp32", metadata: dict[str, str] | None = None) -> str:
    """Write weights + config (+ extra string metadata) atomically; returns the weights sha256."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    tensors = {k: v.detach().to("cpu", WEIGHT_DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}
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


def build_model(config: VidTwinConfig, state_dict: dict[str, torch.Tensor] | None = None) -> VidTwinAE:
    """An eval-mode fp32 model; random init seeded with PRESET_SEED when no weights are given."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PRESET_SEED)
        model = VidTwinAE(config)
    if state_dict is not None:
        try:
            load_strict(model, {k: v.to(torch.float32) for k, v in state_dict.items()})
        except ValueError as e:
            raise ModelError(str(e)) from e
    return model.eval()


def _hub_file(spec: str, cache_dir: Path | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, _, revision = spec.partition("@")
    try:
        return Path(hf_hub_download(repo_id, MODEL_FILENAME, revision=revision or None, cache_dir=cache_dir))
    except LocalEntryNotFoundError as e:
        raise ModelError(f"{spec}: not in the local hub cache and the hub cannot be reached "
                         "(offline?); download it once online or pass a local .safetensors path") from e
    except RepositoryNotFoundError as e:
        raise ModelError(f"{spec}: no such hub repository (or it is private)") from e
    except RevisionNotFoundError as e:
        raise ModelError(f"{spec}: no revision {revision!r} in {repo_id}") from e
    except EntryNotFoundError as e:
        raise ModelError(f"{spec}: the repository has no {MODEL_FILENAME}") from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelError(f"{spec}: hub download failed ({e})") from e


def _load_file(spec: str, source: str, path: Path) -> LoadedModel:
    config, tensors, meta = read_model_file(path)
    loaded = LoadedModel(build_model(config, tensors), spec, source, path, meta)
    recorded = meta.get("weights_sha256")
    if recorded is not None and recorded != loaded.sha256:
        raise ModelError(f"{path}: weights do not match their recorded sha256 (corrupt or edited file)")
    return loaded


def resolve_model(spec: str | None = None, cache_dir: Path | None = None) -> LoadedModel:
    """Load the model named by `spec` (None: the default model)."""
    spec = spec or DEFAULT_MODEL
    if spec == DEFAULT_MODEL:
        return _load_file(spec, "bundled", BUNDLED_MODEL)
    if spec in PRESETS:
        return LoadedModel(build_model(PRESETS[spec]), spec, "preset")
    path = Path(spec)
    if path.exists() or spec.endswith(".safetensors"):
        return _load_file(spec, "file", path)
    if HUB_ID.match(spec):
        return _load_file(spec, "hub", _hub_file(spec, cache_dir))
    raise ModelError(f"unknown model {spec!r}: use a preset ({', '.join(PRESETS)}), a .safetensors path or org/name[@rev]")


def read_official_checkpoint(path: Path, config: VidTwinConfig) -> dict[str, torch.Tensor]:
    """Load an official Lightning `.ckpt` (or bare state dict) safely and map it to our names."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        try:
            raw = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise InputError(f"{path}: unreadable safetensors file ({e})") from e
    else:
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
    try:
        return from_official(raw, config)
    except ValueError as e:
        raise ModelError(f"{path}: {e}") from e
