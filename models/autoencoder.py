"""VidTwin autoencoder: encoder E, structure branch F_S/H_S, dynamics branch F_D/H_D, decoder D.

Module names follow the official state dict (ARCHITECTURE.md, shared/reference) so official
weights load one-to-one; the only renames (the Q-Former) live in `models/checkpoint.py`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .latents import DiagonalGaussian, Latents
from .layers import normal_init_std, xavier_linear_
from .qformer import TemporalQFormer
from .st_transformer import STTransformer

DecodeOnly = Literal["structure", "dynamics"] | None


@dataclass(frozen=True)
class VidTwinConfig:
    """Every size of a VidTwin model. Defaults are the release config (16×224², d_S = 8)."""

    frames: int = 16  # f: frames per clip (temporal patch is 1)
    image_size: int = 224  # H = W of one clip (tile)
    patch_size: int = 16  # spatial patch p
    in_channels: int = 3  # C
    hidden_size: int = 768  # c: transformer width
    depth: int = 16  # ST blocks in each of encoder and decoder
    num_heads: int = 12
    mlp_ratio: float = 4.0
    causal_time: bool = True  # temporal attention sees frames <= t only
    num_queries: int = 16  # n_q
    query_dim: int = 64  # d_q: Q-Former width
    qformer_layers: int = 6
    qformer_heads: int = 8
    qformer_hidden: int = 768  # Q-Former feed-forward width
    qformer_cross_every: int = 2  # cross-attention in layers 0, k, 2k, ...
    qformer_dropout: float = 0.1  # training only
    init_channels: int = 128  # width of the first structure conv
    structure_blocks: int = 1  # stride-2 convs in F_S (each halves h_S, w_S)
    structure_dim: int = 8  # d_S
    dynamics_blocks: int = 1  # stride-2 convs in F_D (each halves n_D)
    dynamics_dim: int = 8  # d_D

    def __post_init__(self) -> None:
        positive = [f.name for f in dataclasses.fields(self) if f.type in ("int", int) and getattr(self, f.name) <= 0]
        positive = [n for n in positive if n not in ("structure_blocks", "dynamics_blocks")]
        if positive:
            raise ValueError(f"config fields must be positive: {', '.join(positive)}")
        if self.structure_blocks < 0 or self.dynamics_blocks < 0:
            raise ValueError("structure_blocks and dynamics_blocks must be >= 0")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"hidden_size {self.hidden_size} does not split into {self.num_heads} even-width heads")
        if self.hidden_size % 4:
            raise ValueError("hidden_size must be a multiple of 4 (2-D sin-cos table)")
        if self.query_dim % self.qformer_heads:
            raise ValueError(f"query_dim {self.query_dim} is not divisible by qformer_heads {self.qformer_heads}")
        if not 0.0 <= self.qformer_dropout < 1.0:
            raise ValueError("qformer_dropout must be in [0, 1)")

    @property
    def grid(self) -> int:
        """h = w: tokens per side of one frame."""
        return self.image_size // self.patch_size

    @property
    def structure_grid(self) -> int:
        """h_S = w_S: each stride-2 conv maps n to ceil(n / 2)."""
        return _halve(self.grid, self.structure_blocks)

    @property
    def dynamics_length(self) -> int:
        """n_D: positions along each dynamics axis."""
        return _halve(self.grid, self.dynamics_blocks)

    @property
    def structure_shape(self) -> tuple[int, int, int, int]:
        """z_S per clip: (n_q, h_S, w_S, d_S)."""
        return (self.num_queries, self.structure_grid, self.structure_grid, self.structure_dim)

    @property
    def dynamics_shape(self) -> tuple[int, int, int]:
        """z_Dx and z_Dy per clip: (d_D, f, n_D)."""
        return (self.dynamics_dim, self.frames, self.dynamics_length)

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """Model input per clip: (C, T, H, W)."""
        return (self.in_channels, self.frames, self.image_size, self.image_size)

    @property
    def latent_values(self) -> int:
        """Latent values per clip (structure + both dynamics axes)."""
        return math.prod(self.structure_shape) + 2 * math.prod(self.dynamics_shape)

    @property
    def compression_rate(self) -> float:
        """The paper's compression rate: latent values / input values of one clip."""
        return self.latent_values / math.prod(self.clip_shape)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VidTwinConfig:
        """Build from a dict, rejecting unknown fields by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown VidTwin config fields: {', '.join(unknown)}")
        return cls(**d)


def _halve(n: int, times: int) -> int:
    for _ in range(times):
        n = (n + 1) // 2
    return n


class VidTwinAE(nn.Module):
    """VidTwin: video (B, C, T, H, W) in [-1, 1] <-> Latents(structure, dynamics_x, dynamics_y)."""

    def __init__(self, config: VidTwinConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d, g = cfg.hidden_size, cfg.grid

        def transformer() -> STTransformer:
            return STTransformer(
                cfg.in_channels, cfg.frames, g, cfg.patch_size, d, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.causal_time
            )

        self.encoder = transformer()
        self.decoder = transformer()

        # F_S: Q-Former over time at every position, then convs down to the structure moments.
        self.temporal_qformer = TemporalQFormer(
            cfg.num_queries, cfg.query_dim, d, cfg.qformer_layers, cfg.qformer_heads,
            cfg.qformer_hidden, cfg.qformer_cross_every, cfg.qformer_dropout,
        )  # fmt: skip
        widths = [cfg.init_channels * 2**i for i in range(cfg.structure_blocks + 1)]
        self.conv_in = nn.Conv2d(cfg.query_dim, widths[0], 3, padding=1)
        self.content_downsample_blocks = nn.Sequential(
            *(m for a, b in zip(widths, widths[1:]) for m in (nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()))
        )
        self.bottle_down = nn.Conv2d(widths[-1], 2 * cfg.structure_dim, 3, padding=1)

        # H_S: convs back up, then queries -> frames with a kernel-1 Conv1d over the query axis.
        self.bottle_up = nn.Sequential(nn.Conv2d(cfg.structure_dim, widths[-1], 3, padding=1), nn.ReLU())
        self.content_upsample_blocks = nn.Sequential(
            *(
                m
                for a, b in zip(widths[::-1], widths[-2::-1])
                for m in (nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"))
            )
        )
        self.conv_out = nn.Conv2d(widths[0], cfg.query_dim, 3, padding=1)
        self.cont_emb = nn.Sequential(
            nn.Linear(cfg.query_dim, d), nn.ReLU(), nn.Conv1d(cfg.num_queries, cfg.frames, 1), nn.ReLU()
        )

        # F_D: per-frame stride-2 convs, axis averages, shared head G over the (time, position) plane.
        self.downsample_motion_module = nn.Sequential(
            *(m for _ in range(cfg.dynamics_blocks) for m in (nn.Conv2d(d, d, 3, stride=2, padding=1), nn.ReLU()))
        )
        self.motion_head = nn.Conv2d(d, 2 * cfg.dynamics_dim, 3, padding=1)

        # H_D: shared by both axes; channels d_D -> c, then positions n_D -> grid.
        self.motion_emb = nn.Sequential(nn.Linear(cfg.dynamics_dim, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.up_motion = nn.Sequential(nn.Linear(cfg.dynamics_length, g), nn.ReLU(), nn.Linear(g, g), nn.ReLU())

        self._init_weights()

    def _init_weights(self) -> None:
        """Training init of the official code (ARCHITECTURE.md §14); loaded weights replace it."""
        for tr in (self.encoder, self.decoder):
            xavier_linear_(tr)
            w = tr.x_embedder.proj.weight
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(tr.x_embedder.proj.bias)
            for block in tr.blocks:
                nn.init.normal_(block.scale_shift_table, std=normal_init_std(self.config.hidden_size))
                nn.init.zeros_(block.attn_temp.proj.weight)  # temporal attention starts as a no-op
                nn.init.zeros_(block.attn_temp.proj.bias)
            nn.init.normal_(tr.final_layer.scale_shift_table, std=normal_init_std(self.config.hidden_size))
        for m in self.temporal_qformer.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.temporal_qformer.query_embeds)

    # ---- encoding -------------------------------------------------------------------------

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder E: video (B, C, T, H, W) in [-1, 1] -> z (B, c, T, h, w)."""
        if tuple(x.shape[1:]) != self.config.clip_shape:
            raise ValueError(f"expected input (B, {', '.join(map(str, self.config.clip_shape))}), got {tuple(x.shape)}")
        tokens = self.encoder(self.encoder.embed(x))  # (B, T, S, c)
        b, t, _, c = tokens.shape
        g = self.config.grid
        return tokens.permute(0, 3, 1, 2).reshape(b, c, t, g, g)

    def structure_posterior(self, z: torch.Tensor) -> DiagonalGaussian:
        """F_S: z (B, c, T, h, w) -> Gaussian over (B, d_S, n_q, h_S, w_S)."""
        b, c, t, h, w = z.shape
        frames = z.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)  # (B·h·w, T, c), row b·hw + w·i + j
        q = self.temporal_qformer(frames)  # (B·h·w, n_q, d_q)
        n_q, d_q = q.shape[1:]
        q = q.reshape(b, h, w, n_q, d_q).permute(0, 3, 4, 1, 2).reshape(b * n_q, d_q, h, w)
        m = self.bottle_down(self.content_downsample_blocks(self.conv_in(q)))  # (B·n_q, 2·d_S, h_S, w_S)
        m = m.reshape(b, n_q, *m.shape[1:]).transpose(1, 2)  # (B, 2·d_S, n_q, h_S, w_S)
        return DiagonalGaussian(m)

    def dynamics_posteriors(self, z: torch.Tensor) -> tuple[DiagonalGaussian, DiagonalGaussian]:
        """F_D: z (B, c, T, h, w) -> Gaussians over (B, d_D, T, n_D) for the x and y axes."""
        b, c, t, h, w = z.shape
        f = self.downsample_motion_module(z.transpose(1, 2).reshape(b * t, c, h, w))  # (B·T, c, n, n)
        f = f.reshape(b, t, c, *f.shape[2:]).transpose(1, 2)  # (B, c, T, n, n)
        u_x, u_y = f.mean(dim=3), f.mean(dim=4)  # (B, c, T, n): over rows -> per column; over columns -> per row
        return DiagonalGaussian(self.motion_head(u_x)), DiagonalGaussian(self.motion_head(u_y))

    def posteriors(self, x: torch.Tensor) -> tuple[DiagonalGaussian, DiagonalGaussian, DiagonalGaussian]:
        """The three posteriors (structure, dynamics_x, dynamics_y) of a video batch."""
        z = self.features(x)
        return (self.structure_posterior(z), *self.dynamics_posteriors(z))

    @staticmethod
    def latents_from(
        posteriors: tuple[DiagonalGaussian, DiagonalGaussian, DiagonalGaussian],
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> Latents:
        """Means (or samples, drawn in the order structure, x, y) in the public layout."""
        s, dx, dy = (p.latent(sample, generator) for p in posteriors)
        return Latents(s.permute(0, 2, 3, 4, 1), dx, dy)  # z_S -> (B, n_q, h_S, w_S, d_S)

    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Latents:
        """Video (B, C, T, H, W) in [-1, 1] -> Latents (posterior means unless `sample`)."""
        return self.latents_from(self.posteriors(x), sample, generator)

    # ---- decoding -------------------------------------------------------------------------

    def structure_embedding(self, structure: torch.Tensor) -> torch.Tensor:
        """H_S: z_S (B, n_q, h_S, w_S, d_S) -> u_S (B, c, T, h, w)."""
        b, n_q, hs, ws, ds = structure.shape
        g = self.config.grid
        a = structure.permute(0, 1, 4, 2, 3).reshape(b * n_q, ds, hs, ws)
        a = self.conv_out(self.content_upsample_blocks(self.bottle_up(a)))  # (B·n_q, d_q, H_up, W_up)
        top = (a.shape[-2] - g) // 2  # odd grids: centre crop, offset from the height (official)
        a = a[..., top : top + g, top : top + g]
        d_q = a.shape[1]
        a = a.reshape(b, n_q, d_q, g, g).permute(0, 3, 4, 1, 2).reshape(b * g * g, n_q, d_q)
        u = self.cont_emb(a)  # (B·h·w, T, c): Linear on d_q, then Conv1d mapping the n_q slots to T frames
        t, c = u.shape[1:]
        return u.reshape(b, g, g, t, c).permute(0, 4, 3, 1, 2)  # (B, c, T, h, w)

    def dynamics_embedding(self, dynamics: torch.Tensor) -> torch.Tensor:
        """H_D for one axis: (B, d_D, T, n_D) -> (B, c, T, grid)."""
        v = self.motion_emb(dynamics.permute(0, 2, 3, 1))  # (B, T, n_D, c)
        return self.up_motion(v.permute(0, 3, 1, 2))  # (B, c, T, grid)

    def decode(self, latents: Latents, only: DecodeOnly = None) -> torch.Tensor:
        """Latents -> video (B, C, T, H, W), unbounded (clamp to [-1, 1] for display).

        `only="structure"` decodes u_S alone, `only="dynamics"` v_x + v_y alone (the other head's
        output is left out; this is not decoding a zero latent).
        """
        if only not in (None, "structure", "dynamics"):
            raise ValueError(f"only must be None, 'structure' or 'dynamics', got {only!r}")
        u = 0
        if only != "dynamics":
            u = u + self.structure_embedding(latents.structure)  # (B, c, T, h, w)
        if only != "structure":
            v_x = self.dynamics_embedding(latents.dynamics_x)  # indexed by column: repeat over rows
            v_y = self.dynamics_embedding(latents.dynamics_y)  # indexed by row: repeat over columns
            u = u + v_x.unsqueeze(3) + v_y.unsqueeze(4)
        b, c, t, h, w = u.shape
        tokens = self.decoder(u.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c))  # (B, T, S, c)
        return self.decoder.to_video(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the posterior means."""
        return self.decode(self.encode(x))


PRESETS: dict[str, VidTwinConfig] = {
    # vidtwin_structure_7_7_8_dynamics_7_8: the released checkpoint, 0.335%.
    "release": VidTwinConfig(),
    # The paper's 0.20% setting (d_S = 4).
    "paper": VidTwinConfig(structure_dim=4),
    # CPU-trainable: 8 frames of 64², 8-pixel patches; 1024 latent values per clip (1.04%).
    "small": VidTwinConfig(
        frames=8, image_size=64, patch_size=8, hidden_size=192, depth=4, num_heads=4,
        num_queries=4, query_dim=32, qformer_layers=2, qformer_heads=4, qformer_hidden=128,
        init_channels=32, structure_dim=8, dynamics_dim=8,
    ),
    # The shared/reference fixture: all sizes distinct so transpositions show.
    "tiny": VidTwinConfig(
        frames=6, image_size=32, patch_size=4, hidden_size=48, depth=2, num_heads=4,
        num_queries=3, query_dim=16, qformer_layers=2, qformer_heads=2, qformer_hidden=24,
        init_channels=12, structure_dim=5, dynamics_dim=7,
    ),
}  # fmt: skip
