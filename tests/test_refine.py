"""Encoder-side latent refinement (`--refine`, codec/refine.py): it lowers the error of what decodes, on
real video with the bundled model, whatever the batching, through the packed fp32 CPU path too."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import vidtwin_cli.api as vt
from vidtwin_cli.codec.refine import refine_latents
from vidtwin_cli.codec.runtime import ModelRunner, PackedLinear, can_pack_linears
from vidtwin_cli.video.io import VideoReader
from vidtwin_cli.vtw.entropy import latent_sigma


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean())


@pytest.mark.skipif(not can_pack_linears(torch.device("cpu"), torch.float32), reason="this torch has no oneDNN linear ops")
def test_a_packed_linear_passes_the_gradients_of_its_linear():
    linear = nn.Linear(24, 16)
    packed = PackedLinear(copy.deepcopy(linear), rows=5)
    x = torch.randn(5, 24)
    grads = []
    for layer in (linear, packed):
        leaf = x.clone().requires_grad_(True)
        (layer(leaf) ** 2).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[1], grads[0])
    with torch.no_grad():
        torch.testing.assert_close(packed(x), linear(x))  # the fused path when no gradient is asked for


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_refining_lowers_the_error_and_ignores_batching(tiny_model, precision):
    x = torch.rand(3, *tiny_model.config.clip_shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    whole = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), precision, batch_size=3)
    one = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), precision, batch_size=1)
    given = whole.encode(x)
    sigma = latent_sigma(given)
    refined = whole.refine(x, given, 8, sigma)
    assert mse(whole.decode(refined), x) < mse(whole.decode(given), x)  # random weights: noise is hardly fit
    by_one = one.refine(x, given, 8, sigma)
    tolerance = 1e-4 if precision == torch.float32 else 0.05
    torch.testing.assert_close(by_one.structure, refined.structure, atol=tolerance, rtol=0)
    torch.testing.assert_close(by_one.dynamics_x, refined.dynamics_x, atol=tolerance, rtol=0)
    assert all(p.grad is None and not p.requires_grad for p in whole.model.parameters())  # the model stays fixed


def test_zero_steps_return_the_latents_given(tiny_model):
    x = torch.rand(1, *tiny_model.config.clip_shape) * 2 - 1
    given = tiny_model.encode(x)
    kept = refine_latents(tiny_model.decode, x, given, 0, 1.0)
    assert torch.equal(kept.structure, given.structure) and torch.equal(kept.dynamics_y, given.dynamics_y)


def test_refine_improves_real_video_with_the_bundled_model(media_dir):
    """16 frames of a real clip, 96x64 (six tiles): each refine step count is better than the one before."""
    with VideoReader(media_dir / "carphone_pristine.mp4") as video:
        frames = np.stack([f[:64, :96] for _, f in zip(range(16), video)])
    model = vt.load_model("default", "cpu", "fp32")
    psnrs = []
    for steps in (0, 3, 10):
        vtw = vt.encode(frames, model=model, options=vt.EncodeOptions(dtype="fp32", refine=steps), fps=25)
        decoded = np.stack(list(vt.decode(vtw, model=model))).astype(np.float64)
        psnrs.append(10 * math.log10(255**2 / float(((decoded - frames) ** 2).mean())))
    assert psnrs[0] + 0.15 < psnrs[1] < psnrs[2] - 0.15, psnrs


@pytest.mark.parametrize("steps", ["-1", "1001"])
def test_a_refine_outside_its_range_is_a_usage_error(cli, sample_video, tmp_path, steps):
    result = cli(["encode", sample_video, "-o", tmp_path / "x.vtw", "--model", "tiny", "--refine", steps])
    assert result.exit_code == 2 and result.stderr == f"error: --refine {steps} is outside 0..1000\n"
    assert not (tmp_path / "x.vtw").exists()
