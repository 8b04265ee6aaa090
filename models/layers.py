"""Building blocks shared by the transformers: attention, MLP, adaLN modulation, sin-cos tables."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x·(1 + scale) + shift (DiT), as one fused kernel (no x·(1 + scale) temporary)."""
    return torch.addcmul(shift, x, 1 + scale)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos table (len(positions), dim) in float64: all sines first, then all cosines."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)  # (N, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Spatial table (grid², dim) in float64 for tokens in row-major (row i, column j) order.

    The first half of the channels encodes the column (width) index, the second half the row
    index, as in the official tables (ARCHITECTURE.md §2).
    """
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection, via SDPA."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """x: (N, L, D) -> (N, L, D); `causal` lets position l attend to positions <= l only."""
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (N, heads, L, head_dim)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (N, heads, L, head_dim)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    """Two-layer feed-forward with tanh-approximated GELU (the ST blocks' MLP)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if h.requires_grad:  # autograd keeps fc1's output for the backward pass
            return self.fc2(F.gelu(h, approximate="tanh"))
        # Inference: GELU in place. The hidden activations are the model's largest buffer (38 MiB per
        # release tile); a second one costs a fresh allocation and a pass over memory per block.
        return self.fc2(torch.ops.aten.gelu_(h, approximate="tanh"))


def xavier_linear_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero bias for every Linear in `module` (transformer init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def normal_init_std(dim: int) -> float:
    """Standard deviation of the adaLN tables' N(0, 1/dim) init."""
    return 1.0 / math.sqrt(dim)
