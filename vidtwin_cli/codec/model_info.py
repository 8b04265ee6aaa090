"""Facts about a model that `vidtwin info` reports (sizes, rate, fingerprint), as typed records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from models import VidTwinAE

from vidtwin_cli.bench.metrics import json_ready
from vidtwin_cli.codec.weights import LoadedModel


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
        return json_ready(asdict(self))
