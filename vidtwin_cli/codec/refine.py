"""Encoder-side latent refinement: search for latents that the decoder turns into the clip more exactly.

The encoder predicts latents in one pass; the decoder is what the viewer sees. `refine_latents` starts
from the encoder's latents and takes `steps` Adam steps on them (the model fixed) to lower the squared
error of the decoded clip, with the learning rate decaying to zero on a cosine. Only encoding pays for
it (each step is one decoder pass forward and back, about three decodes); decoding and the file format
are unchanged, and any decoder of the same weights reads the result. Figures: docs/model-card.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from models import Latents

# Adam's first step size, in units of the latents' standard deviation. On 8 held-out tiles each of bikes and
# box (bundled model, stage 10) 10 / 25 steps gained +1.33 / +1.83 and +1.10 / +1.65 dB at 0.1, against
# +1.16 / +1.62 and +1.29 / +1.67 at 0.05 and +1.11 / +1.81 and -0.79 / +1.09 at 0.2.
REFINE_LR = 0.1


def refine_latents(decode: Callable[[Latents], torch.Tensor], clips: torch.Tensor, latents: Latents, steps: int,
                   sigma: float) -> Latents:  # fmt: skip
    """Latents whose decoding is closer to `clips` (N, C, T, H, W) in [-1, 1] than those given.

    `decode` maps latents to clips with autograd on; `sigma` is the latents' spread (the step sizes
    scale with it). Every clip's latents are searched on their own, so the result does not depend on
    how clips are batched.
    """
    params = [t.detach().clone().requires_grad_(True) for t in (latents.structure, latents.dynamics_x,
                                                                  latents.dynamics_y)]  # fmt: skip
    lr = REFINE_LR * sigma
    optimizer = torch.optim.Adam(params, lr=lr)
    target = clips.float()
    with torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            optimizer.zero_grad(set_to_none=True)
            # summed over clips, so that each clip's gradient is its own whatever the batch
            loss = F.mse_loss(decode(Latents(*params)).float(), target, reduction="none").flatten(1).mean(1).sum()
            loss.backward()
            optimizer.step()
    return Latents(*(p.detach() for p in params))
