"""The latents VidTwin produces and the diagonal Gaussian posterior they come from (ARCHITECTURE.md §7, §11)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0  # official clamp of the log-variance


@dataclass(frozen=True)
class Latents:
    """One batch of VidTwin latents.

    structure:  z_S  (B, n_q, h_S, w_S, d_S)
    dynamics_x: z_Dx (B, d_D, T, n_D) from the height average, indexed by column
    dynamics_y: z_Dy (B, d_D, T, n_D) from the width average, indexed by row
    """

    structure: torch.Tensor
    dynamics_x: torch.Tensor
    dynamics_y: torch.Tensor

    def to(self, *args, **kwargs) -> Latents:
        """Move/cast all three tensors (same arguments as `Tensor.to`)."""
        return Latents(*(t.to(*args, **kwargs) for t in (self.structure, self.dynamics_x, self.dynamics_y)))

    def select(self, index: slice | torch.Tensor) -> Latents:
        """Index the batch dimension of all three tensors."""
        return Latents(self.structure[index], self.dynamics_x[index], self.dynamics_y[index])

    @staticmethod
    def cat(parts: list[Latents]) -> Latents:
        """Concatenate along the batch dimension."""
        return Latents(
            torch.cat([p.structure for p in parts]),
            torch.cat([p.dynamics_x for p in parts]),
            torch.cat([p.dynamics_y for p in parts]),
        )

    def rounded(self, step: float) -> Latents:
        """Every value rounded to a multiple of `step` (half to even) going forward; gradients pass through
        unchanged (straight-through), so training sees the quantised latents a decoder will be given."""
        return Latents(*(t + (torch.round(t / step) * step - t).detach() for t in (self.structure, self.dynamics_x, self.dynamics_y)))

    def numel_per_item(self) -> int:
        """Latent values per clip (batch element)."""
        return sum(t[0].numel() for t in (self.structure, self.dynamics_x, self.dynamics_y))


class DiagonalGaussian:
    """N(mean, exp(logvar)) from moments whose dim 1 holds [mean | logvar]."""

    def __init__(self, moments: torch.Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std·eps; eps is drawn on the generator's device, then moved (reproducible across devices)."""
        device = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=device)
        return self.mean + torch.exp(0.5 * self.logvar) * eps.to(self.mean.device)

    def latent(self, sample: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """The posterior mean, or a sample when `sample`."""
        return self.sample(generator) if sample else self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), summed over all latent elements and averaged over the batch: scalar."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1).mean()
