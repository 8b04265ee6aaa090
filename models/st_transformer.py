"""Spatial-temporal transformer (encoder E and decoder D of VidTwin, ARCHITECTURE.md §1-4, §9)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Attention, Mlp, modulate, sincos_1d, sincos_2d

LN_EPS = 1e-6  # official ST LayerNorm eps (1e-5 moves the reconstruction by 1.6e-5)


class PatchEmbed(nn.Module):
    """Non-overlapping (1, p, p) patches -> tokens, as a strided Conv3d (`x_embedder.proj`)."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=(1, patch, patch), stride=(1, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, H, W) -> tokens (B, T, h·w, D) in row-major (row, column) order."""
        x = self.proj(x)  # (B, D, T, h, w)
        b, d, t, h, w = x.shape
        return x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, d)


class STBlock(nn.Module):
    """One ST block: spatial attention, causal temporal attention, MLP, with a learned adaLN table.

    The temporal branch reads the raw residual stream (no norm, no modulation) and reuses the
    spatial gate, as the official block does (ARCHITECTURE.md §3). Each gated residual update
    x + gate·f is one `addcmul`: the hot loop of the model is memory-bound outside its matmuls.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, causal_time: bool) -> None:
        super().__init__()
        self.causal_time = causal_time
        self.norm = nn.LayerNorm(dim, eps=LN_EPS, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))
        self.attn = Attention(dim, num_heads)
        self.attn_temp = Attention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, temporal_pe: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, S, D) -> (B, T, S, D); `temporal_pe` (T, D) is added to the temporal input."""
        b, t, s, d = x.shape
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.scale_shift_table.unbind(0)  # (D,) each
        h = modulate(self.norm(x), shift_a, scale_a).reshape(b * t, s, d)  # frames as the batch
        x = torch.addcmul(x, gate_a, self.attn(h).reshape(b, t, s, d))  # x + gate_a · attn
        h = x if temporal_pe is None else x + temporal_pe[:, None]
        h = h.transpose(1, 2).reshape(b * s, t, d)  # spatial positions as the batch
        x = torch.addcmul(x, gate_a, self.attn_temp(h, causal=self.causal_time).reshape(b, s, t, d).transpose(1, 2))
        return torch.addcmul(x, gate_m, self.mlp(modulate(self.norm(x), shift_m, scale_m)))


class FinalLayer(nn.Module):
    """LayerNorm, adaLN (row 0 shift, row 1 scale) and a Linear to patch pixels."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift, scale = self.scale_shift_table.unbind(0)
        return self.linear(modulate(self.norm(x), shift, scale))


class STTransformer(nn.Module):
    """Patch embedding, fixed sin-cos positions and a stack of ST blocks.

    The encoder uses `embed` + `forward`; the decoder uses `forward` + `to_video`. Both own an
    `x_embedder` and a `final_layer` so their weights line up one-to-one with the official
    state dict; the encoder's final layer and the decoder's embedder are never called.
    """

    def __init__(
        self,
        in_channels: int,
        frames: int,
        grid: int,
        patch: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        causal_time: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.frames, self.grid, self.patch, self.dim = in_channels, frames, grid, patch, dim
        self.x_embedder = PatchEmbed(in_channels, dim, patch)
        self.blocks = nn.ModuleList(STBlock(dim, num_heads, mlp_ratio, causal_time) for _ in range(depth))
        self.final_layer = FinalLayer(dim, patch * patch * in_channels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Video (B, C, T, H, W) -> tokens (B, T, S, D)."""
        return self.x_embedder(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, S, D) -> (B, T, S, D): add the spatial table, run every block."""
        spatial = sincos_2d(self.dim, self.grid).to(tokens)  # (S, D), added to every frame
        temporal = sincos_1d(self.dim, torch.arange(self.frames)).to(tokens)  # (T, D), block 0 only
        x = tokens + spatial
        for i, block in enumerate(self.blocks):
            x = block(x, temporal if i == 0 else None)
        return x

    def to_video(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, S, D) -> video (B, C, T, H, W), unbounded (trained towards [-1, 1])."""
        b, t, _, _ = tokens.shape
        g, p, c = self.grid, self.patch, self.in_channels
        x = self.final_layer(tokens).reshape(b, t, g, g, p, p, c)  # channel k = (p_h·p + p_w)·C + c
        return x.permute(0, 6, 1, 2, 4, 3, 5).reshape(b, c, t, g * p, g * p)
