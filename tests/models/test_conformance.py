"""The re-implementation against the official tiny model's outputs (tests/data/reference)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from models import PRESETS, Latents, VidTwinAE
from models.checkpoint import from_official, load_strict, to_official
from models.layers import Mlp

from ..conftest import REFERENCE

OUTPUTS = ("structure_latent", "dynamics_latent_x", "dynamics_latent_y", "reconstruction",
           "structure_only", "dynamics_only", "swap")  # fmt: skip


def official_weights(fixture: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in fixture.items() if k.split(".")[0] not in ("io", "ref64", "dbg")}


def run_all(model: VidTwinAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        lat = model.encode(x)
        swap = Latents(lat.structure[:1], lat.dynamics_x[1:], lat.dynamics_y[1:])
        return {
            "structure_latent": lat.structure,
            "dynamics_latent_x": lat.dynamics_x,
            "dynamics_latent_y": lat.dynamics_y,
            "reconstruction": model.decode(lat),
            "structure_only": model.decode(lat, only="structure"),
            "dynamics_only": model.decode(lat, only="dynamics"),
            "swap": model.decode(swap),
        }


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-9), (torch.float32, 1e-5)], ids=["fp64", "fp32"])
def test_conformance_with_official_outputs(official_fixture, dtype, atol):
    cfg = PRESETS["tiny"]
    model = VidTwinAE(cfg).eval()
    load_strict(model, from_official(official_weights(official_fixture), cfg))
    model.to(dtype)
    outputs = run_all(model, official_fixture["io.input"].to(dtype))
    for name in OUTPUTS:
        ref = official_fixture[f"ref64.{name}"]
        torch.testing.assert_close(outputs[name].double(), ref, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_conformance_intermediate_encoder_output(official_fixture):
    cfg = PRESETS["tiny"]
    model = VidTwinAE(cfg).eval().double()
    load_strict(model, {k: v.double() for k, v in from_official(official_weights(official_fixture), cfg).items()})
    with torch.no_grad():
        z = model.features(official_fixture["io.input"].double())
    torch.testing.assert_close(z.float(), official_fixture["dbg.encoder_out"], atol=1e-6, rtol=0)


def test_release_layout_matches_official_state_dict():
    shapes = json.loads((REFERENCE / "official_state_dict_shapes.json").read_text())
    official = {k: tuple(v["shape"]) for k, v in shapes["state_dict"].items() if not k.startswith("loss.")}
    cfg = PRESETS["release"]
    with torch.device("meta"):
        model = VidTwinAE(cfg)
    ours = {k: tuple(v.shape) for k, v in to_official(model.state_dict(), cfg).items()}
    assert ours == official
    assert sum(p.numel() for p in model.parameters()) == 312_701_490


def test_only_is_not_a_zero_latent(official_fixture):
    """'only' leaves the other head's output out; decoding a zeroed latent is different."""
    cfg = PRESETS["tiny"]
    model = VidTwinAE(cfg).eval().double()
    load_strict(model, {k: v.double() for k, v in from_official(official_weights(official_fixture), cfg).items()})
    with torch.no_grad():
        lat = model.encode(official_fixture["io.input"].double())
        zeroed = Latents(lat.structure, torch.zeros_like(lat.dynamics_x), torch.zeros_like(lat.dynamics_y))
        assert (model.decode(zeroed) - model.decode(lat, only="structure")).abs().max() > 1e-2


def test_wrong_position_table_is_refused(official_fixture):
    cfg = PRESETS["tiny"]
    weights = official_weights(official_fixture)
    weights["encoder.pos_embed"] = weights["encoder.pos_embed"].flip(1)
    with pytest.raises(ValueError, match="pos_embed"):
        from_official(weights, cfg)


def test_strict_load_names_the_problem(official_fixture):
    cfg = PRESETS["tiny"]
    weights = from_official(official_weights(official_fixture), cfg)
    weights.pop("conv_in.weight")
    weights["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing: conv_in.weight.*unexpected: extra.weight"):
        load_strict(VidTwinAE(cfg), weights)


def test_mlp_gelu_in_place_only_where_autograd_does_not_need_it():
    mlp = Mlp(24, 96)
    x = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(0))
    trained = mlp(x)  # fc1's output is kept for the backward pass
    trained.square().sum().backward()
    assert mlp.fc1.weight.grad is not None and mlp.fc1.weight.grad.abs().sum() > 0
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            torch.testing.assert_close(mlp(x), trained.detach(), atol=0, rtol=0)


def test_reference_files_are_the_recorded_ones():
    """The copied official outputs are byte-for-byte the ones their README names."""
    table = (REFERENCE / "README.md").read_text()
    for path in sorted(REFERENCE.glob("*.*")):
        if path.name != "README.md":
            assert f"`{hashlib.sha256(path.read_bytes()).hexdigest()}`" in table, path.name
