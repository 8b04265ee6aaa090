"""Class-conditional latent DiT over VidTwin latents (paper §3.5, App. B.2, C.3).

The input is the flat, normalised diffusion target y of `LatentTokenizer`: its two token streams
(structure, dynamics) are projected to the DiT width with one Linear each, given learned
positions and concatenated along the sequence. Each block is DiT's adaLN-Zero block (modulated
by the timestep) with a cross-attention to the class embedding inserted after self-attention,
as PixArt-α conditions on text. The model predicts y_0 directly (x0-prediction).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .latent_tokens import LatentTokenizer
from .layers import Attention, Mlp, modulate

LN_EPS = 1e-6  # DiT's LayerNorm eps
POS_INIT_STD = 0.02  # learned positions and class table start as N(0, 0.02²) (timm ViT)
MAX_PERIOD = 10000  # longest period of the sinusoidal timestep features


@dataclass(frozen=True)
class DiTConfig:
    """Every size of a latent DiT. Defaults: the paper's generation model (C.3) on the release AE."""

    depth: int = 18  # transformer blocks
    hidden_size: int = 1152  # d_Diff: DiT width
    num_heads: int = 16
    mlp_hidden: int = 4608  # feed-forward width
    patch_size: int = 2  # p on every latent axis (B.2: "a unified patch size of 2")
    class_dim: int = 256  # class embedding width (C.3: a 256-d vector encodes the class)
    num_classes: int = 101  # UCF-101; a learned null class (index num_classes) is added for CFG
    frequency_dim: int = 256  # sinusoidal timestep features before the timestep MLP
    class_dropout: float = 0.2  # training probability of replacing the class by the null class (C.3)
    structure_shape: tuple[int, int, int, int] = (16, 7, 7, 8)  # (n_q, h_S, w_S, d_S) of the AE
    dynamics_shape: tuple[int, int, int] = (8, 16, 7)  # (d_D, f, n_D) of the AE

    def __post_init__(self) -> None:
        object.__setattr__(self, "structure_shape", tuple(self.structure_shape))
        object.__setattr__(self, "dynamics_shape", tuple(self.dynamics_shape))
        sizes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type in ("int", int)}
        bad = [k for k, v in sizes.items() if type(v) is not int or v <= 0]
        if bad:
            raise ValueError(f"DiT config fields must be positive integers: {', '.join(bad)}")
        if len(self.structure_shape) != 4 or len(self.dynamics_shape) != 3:
            raise ValueError("structure_shape is (n_q, h_S, w_S, d_S) and dynamics_shape is (d_D, f, n_D)")
        if any(type(n) is not int or n <= 0 for n in (*self.structure_shape, *self.dynamics_shape)):
            raise ValueError("latent shapes must hold positive integers")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"hidden_size {self.hidden_size} does not split into {self.num_heads} even-width heads")
        if self.frequency_dim % 2:
            raise ValueError("frequency_dim must be even")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ValueError("class_dropout must be in [0, 1)")

    @property
    def null_class(self) -> int:
        """The index of the learned 'no class' embedding used for classifier-free guidance."""
        return self.num_classes

    def for_autoencoder(self, structure_shape: tuple[int, ...], dynamics_shape: tuple[int, ...], num_classes: int) -> DiTConfig:
        """This architecture sized for one AE's latents and a number of classes."""
        return dataclasses.replace(
            self, structure_shape=tuple(structure_shape), dynamics_shape=tuple(dynamics_shape), num_classes=num_classes
        )

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        """Build from a dict, rejecting unknown fields by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DiT config fields: {', '.join(unknown)}")
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps: t (B,) -> (B, dim), [cos | sin] as in DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Timestep -> width D: sinusoidal features, then Linear-SiLU-Linear."""

    def __init__(self, dim: int, frequency_dim: int) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t (B,) -> (B, D)."""
        return self.mlp(timestep_embedding(t, self.frequency_dim).to(self.mlp[0].weight.dtype))


class CrossAttention(nn.Module):
    """Tokens attend to a context sequence (here: the class embedding), via SDPA."""

    def __init__(self, dim: int, context_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), context (B, M, C) -> (B, L, D)."""
        b, length, dim = x.shape
        head = dim // self.num_heads
        q = self.q(x).reshape(b, length, self.num_heads, head).transpose(1, 2)  # (B, heads, L, head)
        k, v = self.kv(context).reshape(b, -1, 2, self.num_heads, head).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, M, head)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, head)
        return self.proj(out.transpose(1, 2).reshape(b, length, dim))


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention, class cross-attention, adaLN-Zero MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS, elementwise_affine=False)
        self.attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim, eps=LN_EPS)
        self.cross_attn = CrossAttention(dim, context_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS, elementwise_affine=False)
        self.mlp = Mlp(dim, mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), t_emb (B, D), context (B, M, C) -> (B, L, D)."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(t_emb)[:, None].chunk(6, dim=-1)
        x = x + gate_a * self.attn(modulate(self.norm1(x), shift_a, scale_a))
        x = x + self.cross_attn(self.norm_cross(x), context)
        return x + gate_m * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    """adaLN LayerNorm, then one Linear per stream back to patch values."""

    def __init__(self, dim: int, structure_out: int, dynamics_out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS, elementwise_affine=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.structure = nn.Linear(dim, structure_out)
        self.dynamics = nn.Linear(dim, dynamics_out)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, structure_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L_S + L_D, D) -> (B, L_S, P_S), (B, L_D, P_D)."""
        shift, scale = self.adaLN_modulation(t_emb)[:, None].chunk(2, dim=-1)
        x = modulate(self.norm(x), shift, scale)
        return self.structure(x[:, :structure_tokens]), self.dynamics(x[:, structure_tokens:])


class LatentDiT(nn.Module):
    """Di(y_t, t, c) -> ŷ_0 on the flat normalised target of one VidTwin clip."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_size
        self.tokens = LatentTokenizer(cfg.structure_shape, cfg.dynamics_shape, cfg.patch_size)
        tok = self.tokens
        self.structure_embed = nn.Linear(tok.structure_patch_dim, d)
        self.dynamics_embed = nn.Linear(tok.dynamics_patch_dim, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, tok.structure_tokens + tok.dynamics_tokens, d))
        self.t_embedder = TimestepEmbedder(d, cfg.frequency_dim)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, cfg.class_dim)  # last row: the null class
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.num_heads, cfg.mlp_hidden, cfg.class_dim) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(d, tok.structure_patch_dim, tok.dynamics_patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT init: Xavier Linears, N(0, 0.02²) tables, adaLN gates and output layers at zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_embed, std=POS_INIT_STD)
        nn.init.normal_(self.class_embed.weight, std=POS_INIT_STD)
        for m in self.t_embedder.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=POS_INIT_STD)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for m in (self.final_layer.adaLN_modulation[-1], self.final_layer.structure, self.final_layer.dynamics):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, y: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """y_t (B, V) normalised, t (B,) in [0, 1000), labels (B,) in [0, num_classes] -> ŷ_0 (B, V).

        Label `config.null_class` means "no class" (the unconditional branch of CFG).
        """
        s, d = self.tokens.split(y)  # (B, L_S, P_S), (B, L_D, P_D)
        x = torch.cat([self.structure_embed(s), self.dynamics_embed(d)], dim=1) + self.pos_embed  # (B, L, D)
        t_emb = self.t_embedder(t)  # (B, D)
        context = self.class_embed(labels)[:, None]  # (B, 1, class_dim)
        for block in self.blocks:
            x = block(x, t_emb, context)  # (B, L, D)
        return self.tokens.join(*self.final_layer(x, t_emb, self.tokens.structure_tokens))  # (B, V)

    def parameter_count(self) -> int:
        """Learned parameters (the normalisation statistics are buffers, not counted)."""
        return sum(p.numel() for p in self.parameters())


DIT_PRESETS: dict[str, DiTConfig] = {
    # App. C.3: the paper's UCF-101 generation model (DiT-XL width, 18 blocks).
    "paper": DiTConfig(),
    # App. B.2: the "pseudo DiT" used for the resource comparison of Fig. 5.
    "pseudo": DiTConfig(depth=6, hidden_size=512, num_heads=8, mlp_hidden=2048),
    # CPU-trainable in minutes on synth-motion.
    "small": DiTConfig(depth=4, hidden_size=192, num_heads=4, mlp_hidden=768, num_classes=4),
    # CI size.
    "tiny": DiTConfig(depth=2, hidden_size=32, num_heads=2, mlp_hidden=64, class_dim=16, frequency_dim=32, num_classes=4),
}  # fmt: skip
