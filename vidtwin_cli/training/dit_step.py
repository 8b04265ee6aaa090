"""`train dit`'s parts for the shared loop: run config, latent batches and the diffusion step (§3.5, C.3).

The whole latent cache sits in memory as normalised targets y_0 (N, V) with class ids (N,); it is
small next to video (1 KiB per clip for the `small` AE). Batch `s` draws its rows with a generator
seeded from (seed, rank, s), and the diffusion step draws t, ε and the class drop from another,
so a resumed run repeats an uninterrupted one exactly (`loop.step_seed`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from models import Latents
from models.diffusion import GaussianDiffusion
from models.dit import DIT_PRESETS, DiTConfig, LatentDiT

from vidtwin_cli.vtw.header import ModelRef
from vidtwin_cli.generation.weights import save_dit
from vidtwin_cli.errors import UsageError
from vidtwin_cli.training.distributed import DistContext
from vidtwin_cli.training.loop import step_seed, warmup_cosine

# Purposes of the per-step seeds (see loop.step_seed).
SEED_BATCH, SEED_DIFFUSION, SEED_INIT = 11, 12, 13


@dataclass(frozen=True)
class DitTrainConfig:
    """Everything that defines a DiT training run (device, paths and data are not part of it)."""

    preset: str = "small"  # DiT architecture (models.dit.DIT_PRESETS), sized to the AE and the classes
    steps: int = 4000
    batch_size: int = 64  # clips per process and step
    lr: float = 3e-4  # peak learning rate; constant after warm-up (C.3: a LambdaLR warm-up)
    warmup_steps: int = 200  # C.3 uses 10,000 at UCF-101 scale
    beta1: float = 0.9  # Adam betas (C.3)
    beta2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    class_dropout: float = 0.2  # P(class -> null class) per sample, for classifier-free guidance (C.3)
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000  # 0 = only at the end (and on Ctrl-C)
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if self.preset not in DIT_PRESETS:
            raise UsageError(f"unknown DiT preset {self.preset!r} (use {', '.join(DIT_PRESETS)})")
        if min(self.steps, self.batch_size, self.log_every, self.keep_checkpoints) < 1:
            raise UsageError("steps, batch_size, log_every and keep_checkpoints must be >= 1")
        if min(self.warmup_steps, self.checkpoint_every) < 0 or self.lr <= 0:
            raise UsageError("lr must be > 0, warmup_steps and checkpoint_every >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or min(self.weight_decay, self.grad_clip) < 0:
            raise UsageError("betas must be in [0, 1), weight_decay and grad_clip >= 0")
        if not 0 <= self.class_dropout < 1:
            raise UsageError(f"class_dropout must be in [0, 1), got {self.class_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DitTrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown DiT training field(s): {', '.join(unknown)}")
        kinds = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        wrong = [k for k, v in d.items() if not isinstance(v, kinds[k]) and not (kinds[k] is float and type(v) is int)]
        if wrong:
            raise UsageError(f"DiT training field(s) of the wrong type: {', '.join(f'{k}={d[k]!r}' for k in wrong)}")
        return cls(**d)

    def model_config(self, autoencoder: ModelRef, num_classes: int) -> DiTConfig:
        """The preset sized for the AE's latents and the data's classes."""
        ae = autoencoder.config
        base = dataclasses.replace(DIT_PRESETS[self.preset], class_dropout=self.class_dropout)
        return base.for_autoencoder(ae.structure_shape, ae.dynamics_shape, num_classes)


def fresh_dit(config: DitTrainConfig, model_config: DiTConfig, latents: Latents) -> LatentDiT:
    """A newly initialised DiT (seeded from the run seed) with normalisation fitted to `latents`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(step_seed(config.seed, SEED_INIT, 0))
        model = LatentDiT(model_config)
    model.tokens.fit_statistics(latents)
    return model


def latent_batches(
    targets: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, rank: int, start_step: int,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batch s = rows drawn uniformly (with replacement) by a generator seeded from (seed, rank, s).

    targets (N, V) and labels (N,) -> yields (y_0 (B, V), labels (B,)) on `device`, from `start_step` on.
    """
    step = start_step
    while True:
        g = torch.Generator().manual_seed(step_seed(seed, SEED_BATCH, rank, step))
        rows = torch.randint(0, targets.shape[0], (batch_size,), generator=g)
        yield targets[rows].to(device), labels[rows].to(device)
        step += 1


class DitTask:
    """Class-conditional x0-prediction training of one DiT on one process (see `loop.TrainTask`)."""

    def __init__(
        self,
        config: DitTrainConfig,
        model: LatentDiT,
        classes: tuple[str, ...],
        autoencoder: ModelRef,
        dist: DistContext,
        fps: Fraction,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.config, self.dist, self.device = config, dist, dist.device
        self.classes, self.autoencoder, self.fps = classes, autoencoder, fps
        self.model = model.to(self.device).train()
        self.denoiser: torch.nn.Module = self.model
        if dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.denoiser = DistributedDataParallel(self.model, device_ids=ids)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                     weight_decay=config.weight_decay)  # fmt: skip
        self.diffusion = GaussianDiffusion()
        self.rng = torch.Generator(device=self.device)
        self.metadata = metadata or {}

    def learning_rate(self, step: int) -> float:
        """Linear warm-up from 0, then constant."""
        c = self.config
        return warmup_cosine(step, 0.0, c.lr, c.lr, c.warmup_steps, c.steps)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """batch: normalised targets y_0 (B, V) and class ids (B,)."""
        y0, labels = batch
        self.rng.manual_seed(step_seed(self.config.seed, SEED_DIFFUSION, self.dist.rank, step))
        lr = self.learning_rate(step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        cfg = self.model.config
        loss = self.diffusion.training_loss(self.denoiser, y0, labels, cfg.null_class, cfg.class_dropout, self.rng)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        log = {"loss": loss.detach(), "lr": torch.tensor(lr, device=self.device)}
        if self.config.grad_clip > 0:
            log["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.opt.step()
        return log

    def validate(self) -> dict[str, float]:
        """No held-out metric: sample quality is judged by `generate` + `datasets check-motion`."""
        return {}

    def fingerprint(self) -> torch.Tensor:
        """Float64 sum of every parameter, weighted by its position: equal on all ranks while in sync."""
        sums = [p.detach().double().sum() * (i + 1) for i, p in enumerate(self.model.parameters())]
        return torch.stack(sums).sum()

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])

    def save_model(self, path: Path, metadata: dict[str, str]) -> None:
        save_dit(path, self.model, self.classes, self.autoencoder, self.fps, {**self.metadata, **metadata})


def training_metadata(config: DitTrainConfig, data: list[str]) -> dict[str, str]:
    """String metadata stored in every DiT file the run writes."""
    return {"training": json.dumps({"config": config.to_dict(), "data": data}, sort_keys=True)}
