"""VidTwin latents <-> the DiT's token sequences (paper §3.5).

The structure latent z_S (n_q, h_S, w_S, d_S) is a small "video" and is cut into p×p×p patches
over (n_q, h_S, w_S). The two dynamics latents (d_D, f, n_D) are put side by side into one
single-frame video (d_D, 1, f, n_D + n_D) and cut into 1×p×p patches. Axes that are not a
multiple of p are zero-padded at the end and cropped again, so `unpatchify(patchify(z)) == z`
exactly. Each dynamics axis is padded on its own, so no patch straddles the x|y seam.

The diffusion target y is the normalised token values of both streams, flattened and
concatenated: y (B, V) with V = L_S·P_S + L_D·P_D. Normalisation is one mean/std per latent
channel and stream, fitted on the training latents and stored with the DiT weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .latents import Latents

MIN_STD = 1e-6  # a constant channel is scaled by this instead of dividing by zero


def _ceil_div(n: int, p: int) -> int:
    return -(-n // p)


def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad and cut a channel-last volume into patches.

    x: (B, D1, D2, D3, C) -> tokens (B, g1·g2·g3, p1·p2·p3·C) in (g1, g2, g3) row-major order,
    each token holding its patch in (p1, p2, p3, C) order; g_i = ceil(D_i / p_i).
    """
    b, *dims, c = x.shape
    grid = [_ceil_div(n, p) for n, p in zip(dims, patch)]
    pad = [0, 0]  # F.pad lists the last axis first: channels untouched, then D3, D2, D1
    for n, g, p in reversed(list(zip(dims, grid, patch))):
        pad += [0, g * p - n]
    x = F.pad(x, pad)  # (B, g1·p1, g2·p2, g3·p3, C)
    x = x.reshape(b, grid[0], patch[0], grid[1], patch[1], grid[2], patch[2], c)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)  # (B, g1, g2, g3, p1, p2, p3, C)
    return x.reshape(b, math.prod(grid), math.prod(patch) * c)


def unpatchify(tokens: torch.Tensor, dims: tuple[int, int, int], patch: tuple[int, int, int]) -> torch.Tensor:
    """Exact inverse of `patchify`: tokens (B, L, p1·p2·p3·C) -> (B, D1, D2, D3, C), padding cropped."""
    b, length, width = tokens.shape
    grid = [_ceil_div(n, p) for n, p in zip(dims, patch)]
    c = width // math.prod(patch)
    if length != math.prod(grid) or width != c * math.prod(patch):
        raise ValueError(f"tokens {tuple(tokens.shape)} do not fit volume {dims} in patches {patch}")
    x = tokens.reshape(b, *grid, *patch, c).permute(0, 1, 4, 2, 5, 3, 6, 7)  # (B, g1, p1, g2, p2, g3, p3, C)
    x = x.reshape(b, grid[0] * patch[0], grid[1] * patch[1], grid[2] * patch[2], c)
    return x[:, : dims[0], : dims[1], : dims[2]]


class LatentTokenizer(nn.Module):
    """Maps VidTwin `Latents` to the two token streams and the flat diffusion target, and back.

    Holds the per-channel normalisation statistics as buffers (saved with the DiT).
    """

    def __init__(self, structure_shape: tuple[int, int, int, int], dynamics_shape: tuple[int, int, int], patch: int) -> None:
        super().__init__()
        self.structure_shape = tuple(structure_shape)  # (n_q, h_S, w_S, d_S)
        self.dynamics_shape = tuple(dynamics_shape)  # (d_D, f, n_D)
        self.patch = patch
        d_s, d_d = self.structure_shape[-1], self.dynamics_shape[0]
        self.register_buffer("structure_mean", torch.zeros(d_s))
        self.register_buffer("structure_std", torch.ones(d_s))
        self.register_buffer("dynamics_mean", torch.zeros(d_d))
        self.register_buffer("dynamics_std", torch.ones(d_d))

    # ---- sizes ----------------------------------------------------------------------------

    @property
    def structure_patch(self) -> tuple[int, int, int]:
        return (self.patch,) * 3

    @property
    def dynamics_patch(self) -> tuple[int, int, int]:
        return (1, self.patch, self.patch)  # the pseudo time axis of the single-frame video has size 1

    @property
    def _dynamics_axis(self) -> int:
        """n_D padded to a multiple of p: each axis is padded before the two are joined."""
        return _ceil_div(self.dynamics_shape[2], self.patch) * self.patch

    @property
    def dynamics_volume(self) -> tuple[int, int, int]:
        """(1, f, n_D' + n_D'): the combined dynamics 'video' before patchify."""
        return (1, self.dynamics_shape[1], 2 * self._dynamics_axis)

    @property
    def structure_tokens(self) -> int:
        """L_S."""
        return math.prod(_ceil_div(n, self.patch) for n in self.structure_shape[:3])

    @property
    def dynamics_tokens(self) -> int:
        """L_D."""
        return _ceil_div(self.dynamics_shape[1], self.patch) * (2 * self._dynamics_axis // self.patch)

    @property
    def structure_patch_dim(self) -> int:
        """P_S = p³·d_S."""
        return self.patch**3 * self.structure_shape[-1]

    @property
    def dynamics_patch_dim(self) -> int:
        """P_D = p²·d_D."""
        return self.patch**2 * self.dynamics_shape[0]

    @property
    def target_size(self) -> int:
        """V: values in one flat diffusion target."""
        return self.structure_tokens * self.structure_patch_dim + self.dynamics_tokens * self.dynamics_patch_dim

    # ---- exact token <-> latent maps ---------------------------------------------------------

    def patchify(self, latents: Latents) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents -> structure tokens (B, L_S, P_S) and dynamics tokens (B, L_D, P_D)."""
        self._check(latents)
        s = patchify(latents.structure, self.structure_patch)
        pad = self._dynamics_axis - self.dynamics_shape[2]
        dyn = torch.cat([F.pad(latents.dynamics_x, (0, pad)), F.pad(latents.dynamics_y, (0, pad))], dim=-1)  # (B, d_D, f, 2n')
        d = patchify(dyn.permute(0, 2, 3, 1).unsqueeze(1), self.dynamics_patch)  # from (B, 1, f, 2n', d_D)
        return s, d

    def unpatchify(self, structure: torch.Tensor, dynamics: torch.Tensor) -> Latents:
        """Exact inverse of `patchify`."""
        s = unpatchify(structure, self.structure_shape[:3], self.structure_patch)  # (B, n_q, h_S, w_S, d_S)
        dyn = unpatchify(dynamics, self.dynamics_volume, self.dynamics_patch)[:, 0].permute(0, 3, 1, 2)  # (B, d_D, f, 2n')
        n, n_pad = self.dynamics_shape[2], self._dynamics_axis
        return Latents(s, dyn[..., :n], dyn[..., n_pad : n_pad + n])

    # ---- normalised flat target ---------------------------------------------------------------

    @torch.no_grad()
    def fit_statistics(self, latents: Latents) -> None:
        """Set the per-channel mean/std of each stream from training latents (any batch size >= 2)."""
        self._check(latents)
        s = latents.structure.double().flatten(0, 3)  # (B·n_q·h_S·w_S, d_S)
        d = torch.cat([latents.dynamics_x, latents.dynamics_y]).double().transpose(0, 1).flatten(1)  # (d_D, ...)
        self.structure_mean.copy_(s.mean(0))
        self.structure_std.copy_(s.std(0).clamp_min(MIN_STD))
        self.dynamics_mean.copy_(d.mean(1))
        self.dynamics_std.copy_(d.std(1).clamp_min(MIN_STD))

    def pack(self, latents: Latents) -> torch.Tensor:
        """Latents -> normalised diffusion target y (B, V); padding is 0 (the channel mean)."""
        dm, ds = self.dynamics_mean[:, None, None], self.dynamics_std[:, None, None]
        normalised = Latents(
            (latents.structure - self.structure_mean) / self.structure_std,
            (latents.dynamics_x - dm) / ds,
            (latents.dynamics_y - dm) / ds,
        )
        return self.join(*self.patchify(normalised))

    def unpack(self, y: torch.Tensor) -> Latents:
        """Inverse of `pack`: y (B, V) -> Latents in the autoencoder's scale."""
        z = self.unpatchify(*self.split(y))
        dm, ds = self.dynamics_mean[:, None, None], self.dynamics_std[:, None, None]
        return Latents(
            z.structure * self.structure_std + self.structure_mean,
            z.dynamics_x * ds + dm,
            z.dynamics_y * ds + dm,
        )

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, V) -> structure tokens (B, L_S, P_S), dynamics tokens (B, L_D, P_D)."""
        if y.dim() != 2 or y.shape[1] != self.target_size:
            raise ValueError(f"expected a target (B, {self.target_size}), got {tuple(y.shape)}")
        n_s = self.structure_tokens * self.structure_patch_dim
        s, d = y[:, :n_s], y[:, n_s:]
        return s.reshape(len(y), self.structure_tokens, -1), d.reshape(len(y), self.dynamics_tokens, -1)

    @staticmethod
    def join(structure: torch.Tensor, dynamics: torch.Tensor) -> torch.Tensor:
        """Two token streams -> flat y (B, V)."""
        return torch.cat([structure.flatten(1), dynamics.flatten(1)], dim=1)

    def _check(self, latents: Latents) -> None:
        s, dx, dy = (tuple(t.shape[1:]) for t in (latents.structure, latents.dynamics_x, latents.dynamics_y))
        if s != self.structure_shape or dx != self.dynamics_shape or dy != self.dynamics_shape:
            raise ValueError(
                f"latents {s}, {dx}, {dy} do not match the DiT's structure {self.structure_shape} "
                f"and dynamics {self.dynamics_shape}"
            )
