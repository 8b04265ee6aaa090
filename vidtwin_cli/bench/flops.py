"""Analytic FLOP count of one VidTwin encode and one decode, for any `VidTwinConfig` (docs/bench.md).

Counted: every matrix product (Linear, Conv, the Q·Kᵀ and P·V products of attention) as 2 FLOPs per
multiply-add, for one clip (batch 1). Not counted: elementwise work (norms, softmax, GELU, adds,
upsampling), which is O(tokens × width) against the products' O(tokens × width²). Causal temporal
attention is counted in full, as `torch.utils.flop_counter` counts it; convolutions count padded
positions in full. The counts equal what `FlopCounterMode` measures on the model (tests/test_bench.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from models import VidTwinConfig


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one clip, split by stage (keys in data-path order)."""

    encode: dict[str, int]
    decode: dict[str, int]

    @property
    def encode_total(self) -> int:
        return sum(self.encode.values())

    @property
    def decode_total(self) -> int:
        return sum(self.decode.values())

    @property
    def total(self) -> int:
        """One encode + one decode."""
        return self.encode_total + self.decode_total

    def to_dict(self) -> dict:
        return {
            "encode": self.encode_total,
            "decode": self.decode_total,
            "total": self.total,
            "encode_stages": dict(self.encode),
            "decode_stages": dict(self.decode),
        }


def _linear(rows: int, d_in: int, d_out: int) -> int:
    return 2 * rows * d_in * d_out


def _conv(out_positions: int, c_in: int, c_out: int, kernel_numel: int) -> int:
    return 2 * out_positions * c_in * kernel_numel * c_out


def _attention(batch: int, len_q: int, len_k: int, width: int) -> int:
    """Q·Kᵀ and P·V over all heads (heads × head_dim = width)."""
    return 2 * 2 * batch * len_q * len_k * width


def st_block_flops(frames: int, tokens_per_frame: int, dim: int, mlp_hidden: int) -> int:
    """One ST block on (T, S, D) tokens: spatial and temporal attention, MLP."""
    n = frames * tokens_per_frame
    projections = 2 * (_linear(n, dim, 3 * dim) + _linear(n, dim, dim))  # spatial + temporal qkv and out
    spatial = _attention(frames, tokens_per_frame, tokens_per_frame, dim)
    temporal = _attention(tokens_per_frame, frames, frames, dim)
    mlp = _linear(n, dim, mlp_hidden) + _linear(n, mlp_hidden, dim)
    return projections + spatial + temporal + mlp


def qformer_flops(cfg: VidTwinConfig) -> int:
    """The temporal Q-Former run once per spatial position (h·w sequences of T frames)."""
    n_q, d_q, t, c = cfg.num_queries, cfg.query_dim, cfg.frames, cfg.hidden_size
    per_layer_self = 4 * _linear(n_q, d_q, d_q) + _attention(1, n_q, n_q, d_q)
    cross = 2 * _linear(n_q, d_q, d_q) + 2 * _linear(t, c, d_q) + _attention(1, n_q, t, d_q)
    ffn = _linear(n_q, d_q, cfg.qformer_hidden) + _linear(n_q, cfg.qformer_hidden, d_q)
    layers = sum(per_layer_self + ffn + (cross if i % cfg.qformer_cross_every == 0 else 0) for i in range(cfg.qformer_layers))
    return cfg.grid**2 * layers


def _halvings(n: int, times: int) -> list[int]:
    sizes = [n]
    for _ in range(times):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def model_flops(cfg: VidTwinConfig) -> FlopCount:
    """FLOPs of encoding and of decoding one clip of `cfg.clip_shape`."""
    t, g, c, p = cfg.frames, cfg.grid, cfg.hidden_size, cfg.patch_size
    s = g * g
    mlp_hidden = int(c * cfg.mlp_ratio)
    transformer = cfg.depth * st_block_flops(t, s, c, mlp_hidden)
    widths = [cfg.init_channels * 2**i for i in range(cfg.structure_blocks + 1)]
    n_q, d_q = cfg.num_queries, cfg.query_dim

    # F_S convs run on n_q maps of h×w, each stride-2 conv halving (ceil) the side.
    sides = _halvings(g, cfg.structure_blocks)
    structure_convs = n_q * (
        _conv(s, d_q, widths[0], 9)
        + sum(_conv(sides[i + 1] ** 2, widths[i], widths[i + 1], 9) for i in range(cfg.structure_blocks))
        + _conv(sides[-1] ** 2, widths[-1], 2 * cfg.structure_dim, 9)
    )
    motion_sides = _halvings(g, cfg.dynamics_blocks)
    n_d = motion_sides[-1]
    dynamics = t * sum(_conv(side**2, c, c, 9) for side in motion_sides[1:]) + 2 * _conv(t * n_d, c, 2 * cfg.dynamics_dim, 9)
    encode = {
        "patch_embed": _conv(t * s, cfg.in_channels, c, p * p),
        "transformer": transformer,
        "qformer": qformer_flops(cfg),
        "structure_convs": structure_convs,
        "dynamics_convs": dynamics,
    }

    # H_S: conv at h_S, then (conv at the current side, ×2 nearest upsample) per block, conv_out.
    up_sides = [sides[-1] * 2**i for i in range(cfg.structure_blocks + 1)]
    rev = widths[::-1]
    structure_head = n_q * (
        _conv(up_sides[0] ** 2, cfg.structure_dim, widths[-1], 9)
        + sum(_conv(up_sides[i] ** 2, rev[i], rev[i + 1], 9) for i in range(cfg.structure_blocks))
        + _conv(up_sides[-1] ** 2, widths[0], d_q, 9)
    )
    structure_head += _linear(s * n_q, d_q, c) + _linear(s * c, n_q, t)  # cont_emb: Linear, then Conv1d over slots
    dynamics_head = 2 * (_linear(t * n_d, cfg.dynamics_dim, c) + _linear(t * n_d, c, c) + _linear(c * t, n_d, g) + _linear(c * t, g, g))
    decode = {
        "structure_head": structure_head,
        "dynamics_head": dynamics_head,
        "transformer": transformer,
        "final_layer": _linear(t * s, c, p * p * cfg.in_channels),
    }
    return FlopCount(encode, decode)
