"""Temporal Q-Former (BLIP-2 style, post-LayerNorm) of the structure branch F_S (ARCHITECTURE.md §5.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-12  # BERT LayerNorm eps (1e-5 moves the reconstruction by 4.4e-6)


class QFormerAttention(nn.Module):
    """Multi-head attention sub-layer: x <- LN(x + out(MHA(x, context))). Self-attention when context is x."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Q-Former width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.dropout = num_heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(context_dim, dim)
        self.value = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        return x.reshape(n, length, self.num_heads, d // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: (N, Lq, d), context: (N, Lk, d_ctx) -> (N, Lq, d). No mask: every frame is visible."""
        p = self.dropout if self.training else 0.0
        q, k, v = self._heads(self.query(x)), self._heads(self.key(context)), self._heads(self.value(context))
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p).transpose(1, 2).reshape(x.shape)
        return self.norm(x + F.dropout(self.out(a), p))


class QFormerFeedForward(nn.Module):
    """Feed-forward sub-layer with exact (erf) GELU: x <- LN(x + fc2(GELU(fc1(x))))."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        return self.norm(x + F.dropout(self.fc2(F.gelu(self.fc1(x))), p))


class QFormerLayer(nn.Module):
    """Self-attention among the queries, optional cross-attention to the frames, feed-forward."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, hidden: int, cross: bool, dropout: float) -> None:
        super().__init__()
        self.self_attn = QFormerAttention(dim, dim, num_heads, dropout)
        self.cross_attn = QFormerAttention(dim, context_dim, num_heads, dropout) if cross else None
        self.ffn = QFormerFeedForward(dim, hidden, dropout)

    def forward(self, q: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        q = self.self_attn(q, q)
        if self.cross_attn is not None:
            q = self.cross_attn(q, frames)
        return self.ffn(q)


class TemporalQFormer(nn.Module):
    """n_q learned queries summarise a sequence of frame features (no positions, no masks).

    Cross-attention sits in every `cross_every`-th layer starting at layer 0 (BLIP-2 default).
    """

    def __init__(
        self,
        num_queries: int,
        dim: int,
        context_dim: int,
        num_layers: int,
        num_heads: int,
        hidden: int,
        cross_every: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.query_embeds = nn.Parameter(torch.zeros(num_queries, dim))
        self.input_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.layers = nn.ModuleList(
            QFormerLayer(dim, context_dim, num_heads, hidden, cross=(i % cross_every == 0), dropout=dropout)
            for i in range(num_layers)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, T, d_ctx) -> queries (N, n_q, d_q)."""
        q = self.input_norm(self.query_embeds).expand(frames.shape[0], -1, -1)  # (N, n_q, d_q)
        q = F.dropout(q, self.dropout if self.training else 0.0)
        for layer in self.layers:
            q = layer(q, frames)
        return q
