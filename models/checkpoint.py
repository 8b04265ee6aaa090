"""Official state-dict layout <-> ours: the one table of differences and the functions that apply it.

Differences (everything else has the official name and shape):
* Q-Former: BERT-style nested names are flattened (`QFORMER_RENAMES`).
* `{encoder,decoder}.pos_embed[_temporal]`: fixed sin-cos tables, recomputed in forward, so
  not stored; on import they are checked against the recomputed values (a mismatch means the
  checkpoint was made for another input size).
* `loss.*` (LPIPS, discriminator, logvar) is training state, never part of the autoencoder.
"""

from __future__ import annotations

import torch

from .autoencoder import VidTwinAE, VidTwinConfig
from .layers import sincos_1d, sincos_2d

QFORMER_RENAMES: tuple[tuple[str, str], ...] = (
    # (official fragment, ours); matched with the leading dot so "crossattention" never hits "attention".
    ("temporal_qformer.qformer.layernorm.", "temporal_qformer.input_norm."),
    ("temporal_qformer.qformer.encoder.layer.", "temporal_qformer.layers."),
    (".crossattention.attention.query.", ".cross_attn.query."),
    (".crossattention.attention.key.", ".cross_attn.key."),
    (".crossattention.attention.value.", ".cross_attn.value."),
    (".crossattention.output.dense.", ".cross_attn.out."),
    (".crossattention.output.LayerNorm.", ".cross_attn.norm."),
    (".attention.attention.query.", ".self_attn.query."),
    (".attention.attention.key.", ".self_attn.key."),
    (".attention.attention.value.", ".self_attn.value."),
    (".attention.output.dense.", ".self_attn.out."),
    (".attention.output.LayerNorm.", ".self_attn.norm."),
    (".intermediate_query.dense.", ".ffn.fc1."),
    (".output_query.dense.", ".ffn.fc2."),
    (".output_query.LayerNorm.", ".ffn.norm."),
)
FIXED_TABLES = ("pos_embed", "pos_embed_temporal")
TRAINING_PREFIX = "loss."


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for old, new in pairs:
        if old in key:
            key = key.replace(old, new)
    return key


def fixed_tables(config: VidTwinConfig) -> dict[str, torch.Tensor]:
    """The official float64 position buffers for `config`, under their official names."""
    spatial = sincos_2d(config.hidden_size, config.grid)[None]  # (1, S, D)
    temporal = sincos_1d(config.hidden_size, torch.arange(config.frames))[None]  # (1, T, D)
    return {f"{side}.{name}": t for side in ("encoder", "decoder") for name, t in zip(FIXED_TABLES, (spatial, temporal))}


def from_official(state_dict: dict[str, torch.Tensor], config: VidTwinConfig) -> dict[str, torch.Tensor]:
    """Official autoencoder state dict (Lightning `state_dict`) -> ours.

    Drops `loss.*`; checks and drops the fixed position tables; renames the Q-Former.
    Raises ValueError if a position table does not match `config`.
    """
    out: dict[str, torch.Tensor] = {}
    expected = fixed_tables(config)
    for key, value in state_dict.items():
        if key.startswith(TRAINING_PREFIX):
            continue
        if key in expected:
            ref = expected[key]
            if tuple(value.shape) != tuple(ref.shape) or not torch.allclose(value.double(), ref, atol=1e-6):
                raise ValueError(
                    f"{key} {tuple(value.shape)} does not match the config's position table {tuple(ref.shape)}; "
                    "the checkpoint was made for another input size (pick the matching --config)"
                )
            continue
        out[_rename(key, QFORMER_RENAMES)] = value
    return out


def to_official(state_dict: dict[str, torch.Tensor], config: VidTwinConfig) -> dict[str, torch.Tensor]:
    """Ours -> the official layout (with the float64 position tables), e.g. to export weights."""
    back = tuple((new, old) for old, new in QFORMER_RENAMES)
    out = {_rename(k, back): v for k, v in state_dict.items()}
    out.update(fixed_tables(config))
    return out


def state_dict_mismatch(expected: dict[str, tuple[int, ...]], state_dict: dict[str, torch.Tensor]) -> str | None:
    """One line naming missing, unexpected and mis-shaped keys of `state_dict` against `expected` shapes; None if it fits."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {expected[k]}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != expected[k]
    )
    problems = [
        f"{label}: {', '.join(keys[:4])}{f' (+{len(keys) - 4} more)' if len(keys) > 4 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
        if keys
    ]
    return "; ".join(problems) or None


def official_mismatch(state_dict: dict[str, torch.Tensor], config: VidTwinConfig) -> str | None:
    """Why an official state dict is not a checkpoint of `config` (tables, keys, shapes), or None if it is.

    Builds the model on the meta device: no memory, no init, so every preset can be tried cheaply.
    """
    try:
        ours = from_official(state_dict, config)
    except ValueError as e:
        return str(e)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in VidTwinAE(config).state_dict().items()}
    return state_dict_mismatch(expected, ours)


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """`load_state_dict(strict=True)` that fails with one line naming missing/unexpected/mis-shaped keys."""
    problem = state_dict_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()}, state_dict)
    if problem:
        raise ValueError("weights do not fit the model config; " + problem)
    model.load_state_dict(state_dict, strict=True)
