"""`train ae`'s step: one generator update and (once the GAN is on) one discriminator update.

The autoencoder and the learned log-variance train together under one DistributedDataParallel
wrapper (`_Reconstruction`, whose forward is the whole generator loss, adaptive GAN weight
included); the discriminator has its own wrapper and optimiser. Before `disc_start` the
discriminator is skipped entirely: its loss would be multiplied by 0 (ARCHITECTURE.md §14).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models import Latents, VidTwinAE
from models.discriminator import PatchDiscriminator
from models.losses import LPIPS
from models.objective import VidTwinLoss, frames

from vidtwin_cli.bench.metrics import lpips_distances, psnr, ssim
from vidtwin_cli.codec.weights import save_model
from vidtwin_cli.training.config import TrainConfig
from vidtwin_cli.training.distributed import DistContext
from vidtwin_cli.training.loop import step_seed, warmup_cosine
from vidtwin_cli.video.pixels import unit_to_frames
from vidtwin_cli.vtw.entropy import latent_sigma, step_for_quality

# Purposes of the per-step seeds (see loop.step_seed): dropout, posterior samples, initialisation.
SEED_DROPOUT, SEED_POSTERIOR, SEED_INIT = 1, 2, 3


def quantised(latents: Latents, quality: int) -> Latents:
    """`latents` rounded to the step a .vtw at `--quality` would store them with (its spread taken over
    this batch, as a file takes it over its first clip); straight-through for gradients. 0: unchanged."""
    return latents.rounded(step_for_quality(quality, latent_sigma(latents))) if quality else latents


class _Reconstruction(nn.Module):
    """Encode (sampling the posteriors), decode, and return the generator loss.

    With `quality` the decoder is given the latents rounded as a .vtw at that `--quality` stores them
    (the encoder's gradient passes the rounding unchanged), so it learns to decode what files hold.
    """

    def __init__(self, model: VidTwinAE, loss: VidTwinLoss, quality: int = 0) -> None:
        super().__init__()
        self.model, self.loss, self.quality = model, loss, quality

    def forward(
        self, x: torch.Tensor, generator: torch.Generator, discriminator: nn.Module | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        posteriors = self.model.posteriors(x)
        latents = self.model.latents_from(posteriors, sample=True, generator=generator)
        x_hat = self.model.decode(quantised(latents, self.quality))  # (B, C, T, H, W)
        last_layer = self.model.decoder.final_layer.linear.weight
        loss, log = self.loss.generator_loss(x, x_hat, posteriors, discriminator, last_layer)
        return loss, log, x_hat


class _DiscriminatorPair(nn.Module):
    """Logits of real and reconstructed frames in one forward (one DDP forward per backward)."""

    def __init__(self, discriminator: PatchDiscriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.discriminator(real), self.discriminator(fake)


def fresh_model(config: TrainConfig) -> VidTwinAE:
    """A newly initialised autoencoder, seeded from the run seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(step_seed(config.seed, SEED_INIT, 0))
        return VidTwinAE(config.model)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(B, C, T, H, W) in [-1, 1] -> RGB uint8 frames (B·T, H, W, C)."""
    return unit_to_frames(video.detach().transpose(1, 2).flatten(0, 1))  # via (B·T, C, H, W)


@torch.no_grad()
def reconstruction_scores(model: VidTwinAE, clips: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
                          lpips: torch.nn.Module | None = None, quality: int = 0) -> dict[str, float]:
    """Mean per-frame PSNR and SSIM (and LPIPS with `lpips`) of posterior-mean reconstructions of `clips`,
    from latents rounded as `--quality` stores them when `quality` is set (the spread of each batch)."""
    p, s, lp = [], [], []
    for chunk in clips.split(batch_size):
        latents = model.encode(chunk.to(device))
        ref, test = to_uint8_frames(chunk), to_uint8_frames(model.decode(quantised(latents, quality)))
        p += [psnr(a, b) for a, b in zip(ref, test)]
        s += [ssim(a, b) for a, b in zip(ref, test)]
        if lpips is not None:
            lp += lpips_distances(lpips, ref, test, device)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), **({"lpips": float(np.mean(lp))} if lp else {})}


class AutoencoderTask:
    """VidTwin autoencoder training on one process of the job (see `loop.TrainTask`)."""

    def __init__(
        self,
        config: TrainConfig,
        model: VidTwinAE,
        lpips: LPIPS | None,
        dist: DistContext,
        val_clips: torch.Tensor | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.config, self.dist, self.device = config, dist, dist.device
        self.val_clips = val_clips
        self.model = model.to(self.device).train()
        for dead in (model.encoder.final_layer, model.decoder.x_embedder):
            dead.requires_grad_(False)  # never called in forward; keeps DDP from waiting for their grads
        self.loss = VidTwinLoss(config.objective, lpips).to(self.device)
        self.val_lpips = lpips.to(self.device) if lpips is not None else None
        obj = config.objective
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(config.seed, SEED_INIT, 1))
            self.discriminator = PatchDiscriminator(model.config.in_channels, obj.disc_width, obj.disc_layers)
        self.discriminator.to(self.device).train()

        self.generator_step: nn.Module = _Reconstruction(self.model, self.loss, config.quantise_quality)
        self.discriminator_step: nn.Module = _DiscriminatorPair(self.discriminator)
        if dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.generator_step = DistributedDataParallel(self.generator_step, device_ids=ids)
            self.discriminator_step = DistributedDataParallel(self.discriminator_step, device_ids=ids)

        opt = config.optim
        self.g_params = [p for p in self.generator_step.parameters() if p.requires_grad]
        adamw = dict(betas=(opt.beta1, opt.beta2), weight_decay=opt.weight_decay)
        self.opt_g = torch.optim.AdamW(self.g_params, lr=opt.lr, **adamw)
        self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=opt.disc_lr, **adamw)
        self.posterior_rng = torch.Generator(device=self.device)
        self.metadata = metadata or {}

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def learning_rates(self, step: int) -> tuple[float, float]:
        """Generator and discriminator LR at `step`: linear warm-up, then cosine to min_lr."""
        o, total = self.config.optim, self.config.steps
        return (
            warmup_cosine(step, o.lr_start, o.lr, o.min_lr, o.warmup_steps, total),
            warmup_cosine(step, o.disc_lr_start, o.disc_lr, o.min_lr, o.warmup_steps, total),
        )

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """batch (B, C, T, H, W) in [-1, 1]."""
        cfg = self.config
        x = batch.to(self.device, non_blocking=True)
        torch.manual_seed(step_seed(cfg.seed, SEED_DROPOUT, self.dist.rank, step))
        self.posterior_rng.manual_seed(step_seed(cfg.seed, SEED_POSTERIOR, self.dist.rank, step))
        lr_g, lr_d = self.learning_rates(step)
        for group in self.opt_g.param_groups:
            group["lr"] = lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = lr_d
        gan = cfg.objective.gan_active(step)

        self.discriminator.requires_grad_(False)  # the generator's GAN term must not train D
        with self._autocast():
            loss, log, x_hat = self.generator_step(x, self.posterior_rng, self.discriminator if gan else None)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            log["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.g_params, cfg.optim.grad_clip)
        self.opt_g.step()

        if gan:
            self.discriminator.requires_grad_(True)
            with self._autocast():
                real, fake = self.discriminator_step(frames(x), frames(x_hat.detach()))
            d_loss, d_log = self.loss.discriminator_loss(real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            log.update(d_log)
        log.update(lr=torch.tensor(lr_g), lr_d=torch.tensor(lr_d))
        return log

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR / SSIM (and LPIPS) of posterior-mean reconstructions of the held-out clips."""
        if self.val_clips is None or not len(self.val_clips):
            return {}
        self.model.eval()
        try:
            out = reconstruction_scores(self.model, self.val_clips, self.config.batch_size, self.device, self.val_lpips,
                                        self.config.quantise_quality)
        finally:
            self.model.train()
        return {**out, "clips": len(self.val_clips)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "logvar": self.loss.logvar.detach().cpu(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.loss.logvar.copy_(state["logvar"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    @torch.no_grad()
    def fingerprint(self) -> torch.Tensor:
        params = [*self.g_params, *self.discriminator.parameters()]
        return sum(p.double().mul(i + 1).sum() for i, p in enumerate(params))  # position-weighted

    def save_model(self, path: Path, metadata: dict[str, str]) -> None:
        save_model(path, self.model, "fp32", {**self.metadata, **metadata})


def training_metadata(config: TrainConfig, train_files: list[str]) -> dict[str, str]:
    """String metadata stored in every model file the run writes."""
    return {"training": json.dumps({"config": config.to_dict(), "train_files": train_files}, sort_keys=True)}
