"""Facts about a latent DiT that `vidtwin info --dit` reports (parameters, token layout, classes), typed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vidtwin_cli.bench.metrics import json_ready
from vidtwin_cli.generation.weights import LoadedDiT

PAPER_DIT_PARAMETERS = {"pseudo": 12_610_560}  # App. B.2 (counts the feed-forward layers and their norms only)


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
        return json_ready(asdict(self))
