"""VidTwin's training objective (ARCHITECTURE.md §14): per-frame L1 + LPIPS under a learned
log-variance, KL on the three posteriors, and a hinge PatchGAN with an adaptive weight.

Frames are folded into the batch for LPIPS and the discriminator. The discriminator is not a
submodule here: it has its own optimiser (and its own DistributedDataParallel wrapper), so it is
passed in where needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .latents import DiagonalGaussian
from .losses import LPIPS

ADAPTIVE_EPS = 1e-4  # in ||grad nll|| / (||grad gan|| + eps)
ADAPTIVE_MAX = 1e4  # the adaptive weight is clamped to [0, this]


@dataclass(frozen=True)
class ObjectiveConfig:
    """Loss weights; defaults are the release configuration."""

    l1_weight: float = 1.0  # pixel L1 inside the reconstruction term
    perceptual_weight: float = 0.05  # LPIPS per frame, broadcast over its pixels
    lpips_net: str = "vgg"  # "vgg" (official) or "alex"
    kl_weight: float = 1e-3  # on the summed KL of z_S, z_Dx, z_Dy
    learn_logvar: bool = True  # learned scalar s in nll = rec / e^s + s
    logvar_init: float = 0.0
    disc_weight: float = 0.05  # factor on the adaptive generator weight
    disc_factor: float = 1.0  # GAN terms once active (0 before disc_start)
    disc_start: int = 10_000  # optimisation step (batch) where the GAN starts; official 20001 Lightning steps = 2 per batch
    disc_width: int = 64  # ndf
    disc_layers: int = 3

    def __post_init__(self) -> None:
        negative = [f.name for f in dataclasses.fields(self) if f.type in ("float", "int") and getattr(self, f.name) < 0]
        negative = [n for n in negative if n != "logvar_init"]
        if negative:
            raise ValueError(f"objective fields must be >= 0: {', '.join(negative)}")
        if self.lpips_net not in ("vgg", "alex"):
            raise ValueError(f"lpips_net must be 'vgg' or 'alex', got {self.lpips_net!r}")
        if self.disc_layers < 1 or self.disc_width < 1:
            raise ValueError("disc_layers and disc_width must be >= 1")

    def gan_active(self, step: int) -> bool:
        """Whether the GAN terms are on at optimisation step `step` (0-based)."""
        return self.disc_factor > 0 and step >= self.disc_start


def frames(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B·T, C, H, W), frames of one clip adjacent."""
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


def hinge_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5·(E[relu(1 − D(x))] + E[relu(1 + D(x̂))])."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(nll: torch.Tensor, gan: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """||∇nll|| / (||∇gan|| + eps) at `last_layer`, clamped to [0, 1e4], detached (taming/VQGAN)."""
    g_nll = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, last_layer, retain_graph=True)[0]
    return (g_nll.norm() / (g_gan.norm() + ADAPTIVE_EPS)).clamp(0.0, ADAPTIVE_MAX).detach()


class VidTwinLoss(nn.Module):
    """The autoencoder side of the objective: owns the learned log-variance and the frozen LPIPS."""

    def __init__(self, config: ObjectiveConfig, lpips: LPIPS | None) -> None:
        super().__init__()
        if config.perceptual_weight > 0 and lpips is None:
            raise ValueError("perceptual_weight > 0 needs an LPIPS network")
        self.config = config
        self.lpips = lpips if config.perceptual_weight > 0 else None
        self.logvar = nn.Parameter(torch.tensor(float(config.logvar_init)), requires_grad=config.learn_logvar)

    def reconstruction_nll(self, x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Σ (rec / e^s + s) / (B·T) with rec = L1 + w·LPIPS(frame); x, x_hat (B, C, T, H, W)."""
        cfg = self.config
        b, _, t = x.shape[:3]
        rec = cfg.l1_weight * (x - x_hat).abs()  # (B, C, T, H, W)
        log = {"l1": (x - x_hat).abs().mean().detach()}
        if self.lpips is not None:
            p = self.lpips(frames(x_hat), frames(x)).float()  # (B·T,)
            rec = rec + cfg.perceptual_weight * p.view(b, 1, t, 1, 1)  # one value per frame, on all its pixels
            log["lpips"] = p.mean().detach()
        nll = (rec / self.logvar.exp() + self.logvar).sum() / (b * t)
        return nll, log

    def generator_loss(
        self,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        posteriors: tuple[DiagonalGaussian, ...],
        discriminator: nn.Module | None = None,
        last_layer: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total autoencoder loss. The GAN term is added when `discriminator` is given (GAN active);
        its weight is adaptive at `last_layer` (the decoder's final linear weight)."""
        cfg = self.config
        nll, log = self.reconstruction_nll(x, x_hat)
        kl = sum(p.kl() for p in posteriors)
        loss = nll + cfg.kl_weight * kl
        log.update(nll=nll.detach(), kl=kl.detach(), logvar=self.logvar.detach())
        if discriminator is not None:
            if last_layer is None:
                raise ValueError("the adaptive GAN weight needs the decoder's last layer")
            g = -discriminator(frames(x_hat)).float().mean()
            d_weight = cfg.disc_weight * adaptive_weight(nll, g, last_layer)
            loss = loss + d_weight * cfg.disc_factor * g
            log.update(g_loss=g.detach(), d_weight=d_weight)
        log["loss"] = loss.detach()
        return loss, log

    def discriminator_loss(
        self, logits_real: torch.Tensor, logits_fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Hinge loss (× disc_factor) from the logits of real and reconstructed frames."""
        d = self.config.disc_factor * hinge_discriminator_loss(logits_real.float(), logits_fake.float())
        return d, {"d_loss": d.detach(), "logits_real": logits_real.detach().float().mean(),
                   "logits_fake": logits_fake.detach().float().mean()}
