"""Latent DiT model files: weights, config, class names and the autoencoder they were trained for.

A DiT file is a safetensors file (format `vidtwin-dit`): the state dict (normalisation
statistics included) plus string metadata: the `DiTConfig`, the class names, the AE's spec,
config and weights sha256, and the frame rate of the training videos. `--dit` accepts `default`
(the DiT shipped in the package, trained for the bundled autoencoder by scripts/train_default_dit.sh),
such a file, or a preset name (random init, seeded: good for `info` and smoke tests only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from models import VidTwinConfig
from models.dit import DIT_PRESETS, DiTConfig, LatentDiT

from vidtwin_cli.errors import ModelError, UsageError
from vidtwin_cli.codec.weights import build, stored_tensors, tensors_sha256
from vidtwin_cli.tagged_file import read_tagged, write_tagged
from vidtwin_cli.vtw.header import ModelRef

DIT_FORMAT = "vidtwin-dit"
DEFAULT_FPS = Fraction(8)  # frame rate of generated video when the DiT file records none
DEFAULT_DIT = "default"  # the DiT shipped in the package (synth-motion classes, for the bundled autoencoder)
BUNDLED_DIT = Path(__file__).parents[1] / "data" / "dit-synth-motion.safetensors"
DEFAULT_DIT_SCRIPT = "scripts/train_default_dit.sh"  # how BUNDLED_DIT is made (docs/generation.md)


@dataclass
class LoadedDiT:
    """A ready DiT (eval mode, fp32, CPU) and what it was trained on."""

    model: LatentDiT
    spec: str
    source: str  # "preset", "bundled" or "file"
    classes: tuple[str, ...]  # class id -> name
    autoencoder: ModelRef | None  # the autoencoder whose latents it models (`train dit --ae`); None for a preset
    fps: Fraction = DEFAULT_FPS
    path: Path | None = None
    metadata: dict[str, str] | None = None
    _sha256: str | None = None

    @property
    def config(self) -> DiTConfig:
        return self.model.config

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = tensors_sha256(self.model.state_dict())
        return self._sha256

    def class_id(self, name_or_id: str) -> int:
        """A class given by name or by number -> its id; UsageError for an unknown one."""
        if name_or_id in self.classes:
            return self.classes.index(name_or_id)
        if name_or_id.isdigit() and int(name_or_id) < len(self.classes):
            return int(name_or_id)
        raise UsageError(f"unknown class {name_or_id!r}: this DiT knows {', '.join(self.classes)} "
                         f"(or ids 0..{len(self.classes) - 1})")


def build_dit(config: DiTConfig, state_dict: dict[str, torch.Tensor] | None = None) -> LatentDiT:
    """A latent DiT, as `codec.weights.build` makes it."""
    return build(LatentDiT, config, state_dict)


def save_dit(
    path: Path,
    model: LatentDiT,
    classes: tuple[str, ...],
    autoencoder: ModelRef,
    fps: Fraction = DEFAULT_FPS,
    metadata: dict[str, str] | None = None,
    dtype: str = "fp32",
) -> str:
    """Write a DiT file atomically, tensors stored as `dtype`; returns its weights sha256."""
    if len(classes) != model.config.num_classes:
        raise ValueError(f"{len(classes)} class names for a DiT of {model.config.num_classes} classes")
    tensors = stored_tensors(model, dtype)
    sha = tensors_sha256(tensors)  # of the stored values, which is what a reader gets back
    meta = {
        **(metadata or {}),
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "classes": json.dumps(list(classes)),
        "autoencoder": json.dumps({"spec": autoencoder.spec, "weights_sha256": autoencoder.weights_sha256,
                                   "config": autoencoder.config.to_dict()}, sort_keys=True),
        "fps": json.dumps([fps.numerator, fps.denominator]),
        "weights_sha256": sha,
    }
    write_tagged(path, tensors, DIT_FORMAT, meta)
    return sha


def store_dit(src: Path | str, dst: Path | str, dtype: str) -> str:
    """Copy a DiT file with its tensors stored as `dtype` (fp16 halves it); returns the new weights sha256."""
    loaded = load_dit_file(Path(src))
    assert loaded.autoencoder is not None  # a file always records its autoencoder
    return save_dit(Path(dst), loaded.model, loaded.classes, loaded.autoencoder, loaded.fps, loaded.metadata, dtype)


def load_dit_file(path: Path, spec: str | None = None, source: str = "file") -> LoadedDiT:
    """Read and check a DiT file."""
    path = Path(path)
    tensors, meta = read_tagged(path, DIT_FORMAT, "DiT", "train one with 'vidtwin train dit'")
    try:
        config = DiTConfig.from_dict(json.loads(meta["config"]))
        classes = tuple(str(c) for c in json.loads(meta["classes"]))
        ae = json.loads(meta["autoencoder"])
        autoencoder = ModelRef(str(ae["spec"]), str(ae["weights_sha256"]), VidTwinConfig.from_dict(ae["config"]))
        num, den = json.loads(meta.get("fps", "[8, 1]"))
        fps = Fraction(int(num), int(den))
    except (KeyError, ValueError, TypeError, ZeroDivisionError) as e:
        raise ModelError(f"{path}: bad DiT metadata ({e})") from e
    if len(classes) != config.num_classes:
        raise ModelError(f"{path}: {len(classes)} class names for {config.num_classes} classes")
    if (autoencoder.config.structure_shape, autoencoder.config.dynamics_shape) != (config.structure_shape, config.dynamics_shape):
        raise ModelError(f"{path}: the DiT's latent shapes do not match its recorded autoencoder config")
    loaded = LoadedDiT(build_dit(config, tensors), spec or str(path), source, classes, autoencoder, fps, path, meta)
    if meta.get("weights_sha256") not in (None, loaded.sha256):
        raise ModelError(f"{path}: weights do not match their recorded sha256 (corrupt or edited file)")
    return loaded


def resolve_dit(spec: str | None = None) -> LoadedDiT:
    """The default DiT (None or "default"), a DiT preset name (random init, classes class0..) or a DiT file path."""
    spec = spec or DEFAULT_DIT
    if spec == DEFAULT_DIT:
        if not BUNDLED_DIT.is_file():
            raise ModelError(f"this install has no default DiT ({BUNDLED_DIT.name}; {DEFAULT_DIT_SCRIPT} makes it); "
                             "pass --dit FILE from 'vidtwin train dit'")
        return load_dit_file(BUNDLED_DIT, spec, "bundled")
    if spec in DIT_PRESETS:
        config = DIT_PRESETS[spec]
        classes = tuple(f"class{i}" for i in range(config.num_classes))
        return LoadedDiT(build_dit(config), spec, "preset", classes, None)
    path = Path(spec)
    if path.exists() or spec.endswith(".safetensors"):
        return load_dit_file(path, spec)
    raise ModelError(f"unknown DiT {spec!r}: use {DEFAULT_DIT}, a preset ({', '.join(DIT_PRESETS)}) or a DiT .safetensors file")
