"""The training configuration: typed sections, per-preset recipes, a JSON/TOML file and flag overrides.

Resolution order (later wins): the recipe of the model preset < the config file < flags
(`--steps`, `--lr`, ...) < `--set section.field=value`. The resolved config is written to the
run directory and into every checkpoint, so a run can always be repeated or resumed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import PRESETS, VidTwinConfig
from models.objective import ObjectiveConfig

from vidtwin_cli.errors import InputError, UsageError
from vidtwin_cli.vtw.entropy import QUALITIES

RESIZE_MODES = ("short-side", "native")
CROP_MODES = ("random", "center")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and how they are cut."""

    train: tuple[str, ...] = ()  # videos, folders (searched recursively) or .txt/.list files of paths
    val: tuple[str, ...] = ()  # held-out videos for validation (same forms)
    sample_fps: float = 8.0  # frame stride = max(1, round(fps / sample_fps)), official rule
    resize: str = "short-side"  # "short-side": short side -> tile size (official); "native": keep the source size
    min_scale: float = 1.0  # "native": each clip is scaled by a random factor in [min_scale, 1] first
    crop: str = "center"  # training crop, "random" or "center" (official); validation is always centred
    num_workers: int = 2  # DataLoader worker processes per training process
    cache_mb: int = 0  # decode all training videos into RAM first when they fit in this many MiB (0: stream)
    val_clips: int = 4  # evenly spaced clips taken from each validation video

    def __post_init__(self) -> None:
        if self.sample_fps <= 0:
            raise ValueError("data.sample_fps must be > 0")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"data.resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"data.crop must be one of {', '.join(CROP_MODES)}, got {self.crop!r}")
        if not 0 < self.min_scale <= 1:
            raise ValueError("data.min_scale must be in (0, 1]")
        if self.num_workers < 0 or self.val_clips < 1 or self.cache_mb < 0:
            raise ValueError("data.num_workers and data.cache_mb must be >= 0, data.val_clips >= 1")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW for the autoencoder (+ log-variance) and for the discriminator; warm-up then cosine."""

    lr: float = 3.0e-5  # generator peak LR
    disc_lr: float = 1.5e-5  # discriminator peak LR
    lr_start: float = 0.0  # generator LR at step 0 (linear warm-up from here)
    disc_lr_start: float = 1.0e-5  # discriminator LR at step 0
    min_lr: float = 0.0  # both decay to this at the last step (cosine)
    warmup_steps: int = 5000
    beta1: float = 0.0
    beta2: float = 0.9
    weight_decay: float = 1.0e-4
    grad_clip: float = 0.0  # max global grad norm; 0 = off (official)

    def __post_init__(self) -> None:
        if min(self.lr, self.disc_lr, self.lr_start, self.disc_lr_start, self.min_lr, self.weight_decay, self.grad_clip) < 0:
            raise ValueError("optim learning rates, weight_decay and grad_clip must be >= 0")
        if self.warmup_steps < 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("optim.warmup_steps must be >= 0 and betas in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the device and paths are not part of it)."""

    preset: str = "small"  # model preset the run starts from (and its recipe)
    init: str | None = None  # start from these weights (model spec) instead of a fresh preset
    steps: int = 20_000  # optimisation steps (batches)
    batch_size: int = 8  # clips per process and step
    seed: int = 0
    precision: str = "fp32"  # "bf16": autocast on CPU and CUDA
    log_every: int = 10
    val_every: int = 1000  # 0 = only at the end
    checkpoint_every: int = 1000  # 0 = only at the end (and on Ctrl-C)
    keep_checkpoints: int = 3  # older step checkpoints are deleted
    quantise_quality: int = 0  # decode latents rounded as `encode --quality N` stores them (straight-through); 0 = raw
    model: VidTwinConfig = field(default_factory=lambda: PRESETS["small"])
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if min(self.log_every, self.keep_checkpoints) < 1 or min(self.val_every, self.checkpoint_every) < 0:
            raise ValueError("log_every and keep_checkpoints must be >= 1, val_every and checkpoint_every >= 0")
        if self.quantise_quality and self.quantise_quality not in QUALITIES:
            raise ValueError(f"quantise_quality must be 0 (off) or a --quality in {QUALITIES.start}..{QUALITIES.stop - 1}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"]["train"], d["data"]["val"] = list(self.data.train), list(self.data.val)
        return d


# Recipes: the defaults of every field that differs from the dataclass defaults, per preset.
# release/paper: the official configuration (ARCHITECTURE.md §14: batch 2 per process, run it with
# `torchrun --nproc_per_node 4` to match; the official length is 10 epochs of an unknown dataset,
# 100k steps is a guess).
# small: the recipe of the shipped default model (tried on an H100 and this CPU, docs/training.md).
# tiny: tests and smoke runs.
_OFFICIAL: dict[str, Any] = {"steps": 100_000, "batch_size": 2, "data": {"crop": "center", "resize": "short-side"}}
RECIPES: dict[str, dict[str, Any]] = {
    "release": _OFFICIAL,
    "paper": _OFFICIAL,
    "small": {
        "steps": 30_000, "batch_size": 16,
        "data": {"resize": "native", "min_scale": 0.5, "crop": "random", "num_workers": 4, "cache_mb": 4096, "val_clips": 16},
        "objective": {"disc_start": 20_000},
        "optim": {"lr": 3.0e-4, "disc_lr": 1.5e-4, "disc_lr_start": 1.0e-4, "warmup_steps": 500},
    },
    "tiny": {
        "steps": 100, "batch_size": 2, "log_every": 1, "val_every": 0, "checkpoint_every": 0,
        "data": {"num_workers": 0, "val_clips": 1},
        "objective": {"disc_start": 50, "lpips_net": "alex"},
        "optim": {"lr": 1.0e-3, "disc_lr": 1.0e-3, "disc_lr_start": 1.0e-3, "warmup_steps": 10},
    },
}  # fmt: skip

_SECTIONS: dict[str, type] = {"data": DataConfig, "objective": ObjectiveConfig, "optim": OptimConfig, "model": VidTwinConfig}


def read_config_file(path: Path) -> dict[str, Any]:
    """A nested dict from a `.json` or `.toml` config file. Raises InputError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read the config file ({e.strerror or e})") from e
    if path.suffix == ".toml":
        try:
            import tomllib  # Python >= 3.11
        except ImportError as e:
            raise UsageError(f"{path}: TOML config files need Python 3.11 or newer; use a .json file") from e
        parse, errors = tomllib.loads, (tomllib.TOMLDecodeError,)
    else:
        parse, errors = json.loads, (json.JSONDecodeError,)
    try:
        data = parse(text)
    except errors as e:
        raise InputError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config must be an object/table at the top level")
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """{"optim.lr": 1e-4} -> {"optim": {"lr": 1e-4}}."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` items -> {key: value}; values are read as JSON, else kept as strings."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects section.field=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _build(cls: type, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"unknown config field(s) {', '.join(where + k for k in unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in values.items():
        if name in _SECTIONS and cls is TrainConfig:
            if not isinstance(value, dict):
                raise UsageError(f"config section {name!r} must be a table/object")
            value = _build(_SECTIONS[name], value, f"{name}.")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad training config: {e}") from e


def resolve_config(file_values: dict[str, Any], overrides: dict[str, Any], model: VidTwinConfig | None = None) -> TrainConfig:
    """Recipe of the chosen preset, then the file, then the (dotted) overrides.

    `model` (the config of `--init` weights) replaces the preset's model config; `[model]`
    overrides are only allowed for fresh models.
    """
    layered = _merge(file_values, dotted(overrides))
    preset = layered.get("preset", TrainConfig.preset)
    if preset not in RECIPES:
        raise UsageError(f"unknown preset {preset!r} (use {', '.join(PRESETS)})")
    layered = _merge(RECIPES[preset], layered)
    model_overrides = layered.pop("model", {})
    if model is not None and model_overrides:
        raise UsageError("model fields cannot be changed when starting from --init weights")
    base = model if model is not None else PRESETS[preset]
    layered["model"] = _merge(dataclasses.asdict(base), model_overrides)
    return _build(TrainConfig, layered, "")


def config_from_dict(d: dict[str, Any], file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Rebuild a resolved config (as written by `TrainConfig.to_dict`), optionally changed by a
    file and overrides (used on `--resume`: no recipe is applied again)."""
    return _build(TrainConfig, _merge(_merge(d, file_values or {}), dotted(overrides or {})), "")
