"""Facts about a model that `vidtwin info` reports (sizes, rate, fingerprint), as typed records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from models import VidTwinAE

from vidtwin_cli.codec.weights import LoadedModel
from vidtwin_cli.generation.weights import LoadedDiT


@dataclass(frozen=True)
class ParameterCounts:
    """All parameters, and those the forward pass uses (the official layout keeps two dead modules)."""

    parameters: int
    parameters_used: int

    @classmethod
    def of(cls, model: VidTwinAE) -> ParameterCounts:
        total = sum(p.numel() for p in model.parameters())
        dead = sum(p.numel() for m in (model.encoder.final_layer, model.decoder.x_embedder) for p in m.parameters())
        return cls(total, total - dead)


@dataclass(frozen=True)
class LatentShapes:
    """The latent tensors of one clip (structure, and the two dynamics maps)."""

    structure: tuple[int, ...]
    dynamics_x: tuple[int, ...]
    dynamics_y: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What `vidtwin info` says about an autoencoder."""

    model: str  # the spec it was asked by (preset, file, hub id)
    source: str
    trained: bool  # presets are seeded random weights
    path: str | None
    commit: str | None  # the hub revision it came from
    parameters: int
    parameters_used: int  # the official layout keeps two modules the forward pass never calls
    weights_sha256: str
    clip_shape: tuple[int, ...]  # (C, T, H, W)
    latent_shapes: LatentShapes
    latent_values_per_clip: int
    compression_rate: float  # latent values / input values
    config: dict[str, Any]

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelInfo:
        cfg, counts = loaded.config, ParameterCounts.of(loaded.model)
        return cls(
            model=loaded.spec,
            source=loaded.source,
            trained=loaded.source != "preset",
            path=str(loaded.path) if loaded.path else None,
            commit=loaded.commit,
            parameters=counts.parameters,
            parameters_used=counts.parameters_used,
            weights_sha256=loaded.sha256,
            clip_shape=tuple(cfg.clip_shape),
            latent_shapes=LatentShapes(tuple(cfg.structure_shape), tuple(cfg.dynamics_shape), tuple(cfg.dynamics_shape)),
            latent_values_per_clip=cfg.latent_values,
            compression_rate=cfg.compression_rate,
            config=cfg.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        """The `vidtwin info --json` object."""
        return _lists(asdict(self))


@dataclass(frozen=True)
class TokenLayout:
    """How a DiT cuts one clip's latents into tokens: (count, values per token) for each kind."""

    structure: tuple[int, int]
    dynamics: tuple[int, int]


@dataclass(frozen=True)
class DiTInfo:
    """What `vidtwin info --dit` says about a latent DiT."""

    dit: str
    source: str
    path: str | None
    parameters: int
    paper_parameters: int | None  # App. B.2's count, for the presets that match the paper
    weights_sha256: str
    tokens: TokenLayout
    target_values: int
    classes: tuple[str, ...]
    autoencoder: dict[str, str] | None  # spec and weights_sha256 of the autoencoder it models; None for a preset
    config: dict[str, Any]

    @classmethod
    def of(cls, loaded: LoadedDiT) -> DiTInfo:
        tok, ae = loaded.model.tokens, loaded.autoencoder
        return cls(
            dit=loaded.spec,
            source=loaded.source,
            path=str(loaded.path) if loaded.path else None,
            parameters=loaded.model.parameter_count(),
            paper_parameters=PAPER_DIT_PARAMETERS.get(loaded.spec) if loaded.source == "preset" else None,
            weights_sha256=loaded.sha256,
            tokens=TokenLayout((tok.structure_tokens, tok.structure_patch_dim), (tok.dynamics_tokens, tok.dynamics_patch_dim)),
            target_values=tok.target_size,
            classes=tuple(loaded.classes),
            autoencoder=None if ae is None else {"spec": ae.spec, "weights_sha256": ae.weights_sha256},
            config=loaded.config.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        """The `vidtwin info --dit ... --json` object."""
        return _lists(asdict(self))


PAPER_DIT_PARAMETERS = {"pseudo": 12_610_560}  # App. B.2 (counts the feed-forward layers and their norms only)


def _lists(value: Any) -> Any:
    """Tuples as JSON lists, all the way down."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value
