"""Gaussian diffusion for x0-prediction: the 1000-step noise schedule, the training loss and DDIM with CFG.

Paper §3.5 and App. C.3/D.1: q(y_t | y_0) = N(√ᾱ_t y_0, (1 − ᾱ_t) I) with the linear β schedule of
DDPM, the model predicts y_0 directly (loss ‖Di(y_t, c) − y_0‖²), sampling is DDIM on a subset of
the steps, and classifier-free guidance mixes the conditional and the null-class prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (y_t, t, labels) -> ŷ_0


@dataclass(frozen=True)
class ScheduleConfig:
    """The forward process. Defaults: 1000 steps, β linear from 1e-4 to 0.02 (DDPM)."""

    num_steps: int = 1000  # T
    beta_start: float = 1e-4  # β_1
    beta_end: float = 0.02  # β_T

    def __post_init__(self) -> None:
        if self.num_steps < 1 or not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError("need num_steps >= 1 and 0 < beta_start <= beta_end < 1")


class GaussianDiffusion:
    """ᾱ_t table plus the three operations the generator needs: noising, loss, DDIM sampling."""

    def __init__(self, config: ScheduleConfig = ScheduleConfig()) -> None:
        self.config = config
        betas = torch.linspace(config.beta_start, config.beta_end, config.num_steps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # ᾱ_t, t = 0..T-1, float64 on the CPU

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t for integer steps t (B,), shaped to broadcast against `like` (B, ...)."""
        a = self.alphas_cumprod[t.cpu()].to(device=like.device, dtype=like.dtype)
        return a.reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, y0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """y_t = √ᾱ_t y_0 + √(1 − ᾱ_t) ε; y0, noise (B, ...), t (B,) integer steps."""
        a = self._abar(t, y0)
        return a.sqrt() * y0 + (1 - a).sqrt() * noise

    def training_loss(
        self,
        model: Denoiser,
        y0: torch.Tensor,
        labels: torch.Tensor,
        null_class: int,
        class_dropout: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Mean ‖Di(y_t, t, c) − y_0‖² over a batch, with t ~ U{0..T-1} and c dropped w.p. `class_dropout`.

        All randomness (t, ε, the class drop) comes from `generator` (drawn on its device, then
        moved), so a seeded step is reproducible.
        """
        b = y0.shape[0]
        device = generator.device if generator is not None else y0.device
        t = torch.randint(0, self.num_steps, (b,), generator=generator, device=device)
        noise = torch.randn(y0.shape, generator=generator, device=device, dtype=y0.dtype).to(y0.device)
        drop = torch.rand(b, generator=generator, device=device) < class_dropout
        labels = torch.where(drop.to(labels.device), torch.full_like(labels, null_class), labels)
        t = t.to(y0.device)
        return F.mse_loss(model(self.q_sample(y0, t, noise), t, labels), y0)

    def timesteps(self, steps: int) -> list[int]:
        """The DDIM subsequence τ: `steps` evenly spaced integer steps from T−1 down to 0."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"steps must be in 1..{self.num_steps}, got {steps}")
        grid = torch.linspace(self.num_steps - 1, 0, steps, dtype=torch.float64).round().long()
        return grid.tolist()

    def guided_x0(self, model: Denoiser, y: torch.Tensor, t: int, labels: torch.Tensor, null_class: int, cfg: float) -> torch.Tensor:
        """ŷ_0 with classifier-free guidance: ŷ_0(∅) + cfg·(ŷ_0(c) − ŷ_0(∅)); cfg = 1 runs the conditional branch only."""
        b = y.shape[0]
        if cfg == 1.0:
            return model(y, torch.full((b,), t, device=y.device), labels)
        both = model(
            torch.cat([y, y]), torch.full((2 * b,), t, device=y.device), torch.cat([labels, torch.full_like(labels, null_class)])
        )  # (2B, V): one batched call for both branches
        cond, uncond = both[:b], both[b:]
        return uncond + cfg * (cond - uncond)

    @torch.no_grad()
    def ddim_sample(
        self,
        model: Denoiser,
        labels: torch.Tensor,
        size: int,
        null_class: int,
        steps: int = 50,
        eta: float = 0.0,
        cfg: float = 5.0,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Sample ŷ_0 (B, size) for `labels` (B,) with DDIM (Song et al., eq. 12).

        y_T ~ N(0, I); at each τ_i → τ_{i-1}: ε̂ = (y_t − √ᾱ_t ŷ_0) / √(1 − ᾱ_t),
        y_prev = √ᾱ_prev ŷ_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z, σ = eta·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev).
        The last step returns ŷ_0. Noise is drawn on the generator's device and moved, so a seed
        gives the same noise on every device.
        """
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if cfg < 0:
            raise ValueError(f"cfg must be >= 0, got {cfg}")
        taus = self.timesteps(steps)
        device = labels.device
        dtype = torch.float32
        noise_device = generator.device if generator is not None else device

        def gaussian() -> torch.Tensor:
            return torch.randn((labels.shape[0], size), generator=generator, device=noise_device, dtype=dtype).to(device)

        y = gaussian()
        for i, t in enumerate(taus):
            x0 = self.guided_x0(model, y, t, labels, null_class, cfg).to(dtype)
            if i == len(taus) - 1:
                y = x0
            else:
                a_t, a_prev = self.alphas_cumprod[t].item(), self.alphas_cumprod[taus[i + 1]].item()
                eps = (y - a_t**0.5 * x0) / (1 - a_t) ** 0.5
                sigma = eta * ((1 - a_prev) / (1 - a_t)) ** 0.5 * (1 - a_t / a_prev) ** 0.5
                y = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
                if sigma > 0:
                    y = y + sigma * gaussian()
            if progress is not None:
                progress(1)
        return y
