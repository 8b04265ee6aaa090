"""Latent DiT, token layout and diffusion sampler (paper §3.5, App. B.2, C.3)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import PRESETS, Latents
from models.diffusion import GaussianDiffusion
from models.dit import DIT_PRESETS, DiTConfig, LatentDiT
from models.latent_tokens import LatentTokenizer

PAPER_PSEUDO_PARAMETERS = 12_610_560  # App. B.2


def random_latents(structure_shape, dynamics_shape, batch=3, seed=0) -> Latents:
    g = torch.Generator().manual_seed(seed)
    return Latents(
        torch.randn(batch, *structure_shape, generator=g) * 3 + 1,
        torch.randn(batch, *dynamics_shape, generator=g) * 0.5 - 2,
        torch.randn(batch, *dynamics_shape, generator=g) * 0.5 + 2,
    )


def tiny_dit(seed: int = 0, perturb: bool = True) -> LatentDiT:
    """The tiny DiT on the tiny AE's latents; `perturb` moves the zero-initialised outputs off zero."""
    ae = PRESETS["tiny"]
    cfg = DIT_PRESETS["tiny"].for_autoencoder(ae.structure_shape, ae.dynamics_shape, num_classes=4)
    torch.manual_seed(seed)
    model = LatentDiT(cfg).eval()
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("patch", [1, 2, 3])
@pytest.mark.parametrize("ae", ["tiny", "small", "release"])
def test_patchify_round_trip_is_exact(ae, patch):
    cfg = PRESETS[ae]
    tok = LatentTokenizer(cfg.structure_shape, cfg.dynamics_shape, patch)
    z = random_latents(cfg.structure_shape, cfg.dynamics_shape)
    s, d = tok.patchify(z)
    assert s.shape == (3, tok.structure_tokens, tok.structure_patch_dim)
    assert d.shape == (3, tok.dynamics_tokens, tok.dynamics_patch_dim)
    back = tok.unpatchify(s, d)
    for name in ("structure", "dynamics_x", "dynamics_y"):
        assert torch.equal(getattr(back, name), getattr(z, name)), name


def test_release_token_layout_matches_the_paper():
    # z_S (d_S=8, n_q=16, 7, 7) in 2×2×2 patches -> 8·4·4 tokens; z_D (8, 1, 16, 7+7) -> 8 × (4+4) tokens.
    cfg = PRESETS["release"]
    tok = LatentTokenizer(cfg.structure_shape, cfg.dynamics_shape, 2)
    assert (tok.structure_tokens, tok.structure_patch_dim) == (128, 64)
    assert (tok.dynamics_tokens, tok.dynamics_patch_dim) == (64, 32)
    assert tok.dynamics_volume == (1, 16, 16)


def test_no_patch_straddles_the_dynamics_seam():
    cfg = PRESETS["tiny"]  # n_D = 4: with p = 3 each axis pads to 6
    tok = LatentTokenizer(cfg.structure_shape, cfg.dynamics_shape, 3)
    z = random_latents(cfg.structure_shape, cfg.dynamics_shape)
    z = Latents(z.structure, z.dynamics_x, torch.zeros_like(z.dynamics_y))
    _, d = tok.patchify(z)
    cols = tok.dynamics_volume[2] // 3
    per_row = d.reshape(3, -1, cols, d.shape[-1])  # (B, row tokens, column tokens, P_D)
    assert per_row[:, :, cols // 2 :].abs().max() == 0  # the y half holds only y values


def test_pack_normalises_and_unpack_inverts():
    cfg = PRESETS["tiny"]
    tok = LatentTokenizer(cfg.structure_shape, cfg.dynamics_shape, 2)
    z = random_latents(cfg.structure_shape, cfg.dynamics_shape, batch=64)
    tok.fit_statistics(z)
    y = tok.pack(z)
    assert y.shape == (64, tok.target_size)
    s = tok.unpatchify(*tok.split(y)).structure
    torch.testing.assert_close(s.mean(dim=(0, 1, 2, 3)), torch.zeros(cfg.structure_dim), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.std(dim=(0, 1, 2, 3)), torch.ones(cfg.structure_dim), atol=1e-5, rtol=0)
    back = tok.unpack(y)
    for name in ("structure", "dynamics_x", "dynamics_y"):
        torch.testing.assert_close(getattr(back, name), getattr(z, name), atol=1e-5, rtol=1e-5)


def test_tokenizer_rejects_other_latent_shapes():
    tok = LatentTokenizer(PRESETS["tiny"].structure_shape, PRESETS["tiny"].dynamics_shape, 2)
    other = PRESETS["small"]
    with pytest.raises(ValueError, match="do not match"):
        tok.patchify(random_latents(other.structure_shape, other.dynamics_shape))


def test_dit_forward_shape_and_zero_init():
    model = tiny_dit(perturb=False)
    v = model.tokens.target_size
    y = torch.randn(5, v)
    out = model(y, torch.tensor([0, 10, 500, 999, 3]), torch.tensor([0, 1, 2, 3, 4]))
    assert out.shape == (5, v)
    assert out.abs().max() == 0  # adaLN-Zero: the output layer starts at zero


def test_config_round_trips_and_validates():
    cfg = DIT_PRESETS["pseudo"].for_autoencoder((4, 4, 4, 8), (8, 8, 4), 4)
    assert DiTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown DiT config fields"):
        DiTConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="heads"):
        dataclasses.replace(cfg, num_heads=7)
    with pytest.raises(ValueError, match="positive"):
        dataclasses.replace(cfg, depth=0)


def test_pseudo_parameter_count_against_the_paper():
    """B.2 reports 12,610,560 parameters: exactly 6 × (FFN 512→2048→512 with biases + two affine LayerNorms).

    That is the feed-forward part alone; a DiT block also has self-attention (4·512² + biases),
    adaLN (512·6·512) and here a class cross-attention, so the full model is larger.
    """
    model = LatentDiT(DIT_PRESETS["pseudo"])
    width, ffn, depth = 512, 2048, 6
    mlp = sum(p.numel() for b in model.blocks for p in b.mlp.parameters())
    assert mlp == depth * (2 * width * ffn + ffn + width)
    assert mlp + depth * 2 * (2 * width) == PAPER_PSEUDO_PARAMETERS
    total = model.parameter_count()
    print(f"pseudo DiT: {total:,} parameters (paper B.2: {PAPER_PSEUDO_PARAMETERS:,})")
    assert total == 34_238_048


def test_training_loss_is_seeded_and_decreases():
    model = tiny_dit(perturb=False).train()
    diffusion = GaussianDiffusion()
    y0 = torch.randn(8, model.tokens.target_size, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 4
    cfg = model.config

    def loss(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return diffusion.training_loss(model, y0, labels, cfg.null_class, cfg.class_dropout, g)

    assert torch.equal(loss(3), loss(3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = loss(0).item()
    for step in range(30):
        opt.zero_grad()
        loss(step).backward()
        opt.step()
    last = sum(loss(100 + k).item() for k in range(4)) / 4
    assert last < first


def sample(model: LatentDiT, seed: int, cfg: float = 5.0, steps: int = 4, eta: float = 0.0) -> torch.Tensor:
    return GaussianDiffusion().ddim_sample(
        model, torch.tensor([0, 1, 2, 3]), model.tokens.target_size, model.config.null_class,
        steps=steps, eta=eta, cfg=cfg, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampling_is_deterministic_with_a_seed(eta):
    model = tiny_dit()
    a, b = sample(model, 7, eta=eta), sample(model, 7, eta=eta)
    assert torch.equal(a, b)
    assert not torch.equal(a, sample(model, 8, eta=eta))
    assert torch.isfinite(a).all()


def test_guidance_changes_the_output():
    model = tiny_dit()
    assert not torch.allclose(sample(model, 7, cfg=1.0), sample(model, 7, cfg=5.0))


def test_guidance_one_is_the_conditional_model():
    model = tiny_dit()
    diffusion = GaussianDiffusion()
    y = torch.randn(4, model.tokens.target_size)
    labels = torch.tensor([0, 1, 2, 3])
    cond = model(y, torch.full((4,), 500), labels)
    torch.testing.assert_close(diffusion.guided_x0(model, y, 500, labels, model.config.null_class, 1.0), cond)
    zero = diffusion.guided_x0(model, y, 500, labels, model.config.null_class, 0.0)
    torch.testing.assert_close(zero, model(y, torch.full((4,), 500), torch.full((4,), 4)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 5, 50])
def test_ddim_recovers_a_perfect_denoisers_target(steps):
    target = torch.linspace(-2, 2, 12).repeat(3, 1)  # (3, 12)

    def oracle(y, t, labels):
        return target[: y.shape[0]] if y.shape[0] == 3 else target.repeat(2, 1)

    out = GaussianDiffusion().ddim_sample(oracle, torch.zeros(3, dtype=torch.long), 12, 1, steps=steps, cfg=3.0,
                                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(out, target)


def test_timesteps_cover_the_schedule_and_reject_bad_counts():
    d = GaussianDiffusion()
    assert d.timesteps(50)[0] == 999 and d.timesteps(50)[-1] == 0 and len(set(d.timesteps(50))) == 50
    assert d.timesteps(1) == [999]
    for bad in (0, -1, 1001):
        with pytest.raises(ValueError, match="steps"):
            d.timesteps(bad)
