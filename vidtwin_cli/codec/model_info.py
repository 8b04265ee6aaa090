"""Facts about a model that `vidtwin info` reports (sizes, rate, fingerprint)."""

from __future__ import annotations

from models import VidTwinAE

from vidtwin_cli.generation.weights import LoadedDiT
from vidtwin_cli.codec.weights import LoadedModel


def parameter_counts(model: VidTwinAE) -> dict[str, int]:
    """Total parameters, and those the forward pass uses (the official layout keeps two dead modules)."""
    total = sum(p.numel() for p in model.parameters())
    dead = sum(p.numel() for m in (model.encoder.final_layer, model.decoder.x_embedder) for p in m.parameters())
    return {"parameters": total, "parameters_used": total - dead}


def describe(loaded: LoadedModel) -> dict:
    """A JSON-ready description of a loaded model."""
    cfg = loaded.config
    return {
        "model": loaded.spec,
        "source": loaded.source,
        "trained": loaded.source != "preset",  # presets are seeded random weights
        "path": str(loaded.path) if loaded.path else None,
        "commit": loaded.commit,
        **parameter_counts(loaded.model),
        "weights_sha256": loaded.sha256,
        "clip_shape": list(cfg.clip_shape),
        "latent_shapes": {
            "structure": list(cfg.structure_shape),
            "dynamics_x": list(cfg.dynamics_shape),
            "dynamics_y": list(cfg.dynamics_shape),
        },
        "latent_values_per_clip": cfg.latent_values,
        "compression_rate": cfg.compression_rate,
        "config": cfg.to_dict(),
    }


PAPER_DIT_PARAMETERS = {"pseudo": 12_610_560}  # App. B.2 (counts the feed-forward layers and their norms only)


def describe_dit(loaded: LoadedDiT) -> dict:
    """A JSON-ready description of a latent DiT: parameters, token layout, classes, its autoencoder."""
    tok, ae = loaded.model.tokens, loaded.autoencoder
    return {
        "dit": loaded.spec,
        "source": loaded.source,
        "path": str(loaded.path) if loaded.path else None,
        "parameters": loaded.model.parameter_count(),
        "paper_parameters": PAPER_DIT_PARAMETERS.get(loaded.spec) if loaded.source == "preset" else None,
        "weights_sha256": loaded.sha256,
        "tokens": {"structure": [tok.structure_tokens, tok.structure_patch_dim],
                   "dynamics": [tok.dynamics_tokens, tok.dynamics_patch_dim]},
        "target_values": tok.target_size,
        "classes": list(loaded.classes),
        "autoencoder": None if ae is None else {"spec": ae.spec, "weights_sha256": ae.weights_sha256},
        "config": loaded.config.to_dict(),
    }
