"""2-D PatchGAN discriminator (pix2pix `NLayerDiscriminator` design) applied to single frames.

VidTwin's objective folds the frames of a clip into the batch and scores 70×70-style patches of
each frame (ARCHITECTURE.md §14): 4×4 convs, BatchNorm, LeakyReLU 0.2, N(0, 0.02) init.
"""

from __future__ import annotations

import torch
from torch import nn

LEAK = 0.2


class PatchDiscriminator(nn.Module):
    """Frames (N, C, H, W) in [-1, 1] -> patch logits (N, 1, H', W')."""

    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"discriminator needs at least 1 layer, got {layers}")
        widths = [width * min(2**i, 8) for i in range(layers + 1)]  # 64, 128, 256, 512
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, stride=2, padding=1), nn.LeakyReLU(LEAK)]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1  # the last hidden conv keeps the resolution
            blocks += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False),  # BN supplies the bias
                nn.BatchNorm2d(widths[i]),
                nn.LeakyReLU(LEAK),
            ]
        blocks.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*blocks)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
