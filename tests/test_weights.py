"""Model resolution: presets, local files, the hub cache (offline), official checkpoint conversion."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models import PRESETS, VidTwinAE
from models.checkpoint import to_official
from vidtwin_cli.errors import InputError, ModelError
from vidtwin_cli.codec.weights import build_model, resolve_model, save_model, weights_sha256

from .models.test_conformance import official_weights

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_hub_cache(model_file: Path, repo_id: str, revision: str = "main") -> Path:
    """Lay a file out exactly as huggingface_hub's cache stores a downloaded snapshot."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "model.safetensors").write_bytes(model_file.read_bytes())
    return snapshot


def test_preset_is_seeded_and_deterministic():
    a, b = resolve_model("tiny"), resolve_model("tiny")
    assert a.source == "preset" and a.sha256 == b.sha256


def test_saved_file_round_trips_with_config_and_hash(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    sha = save_model(path, tiny_model)
    loaded = resolve_model(str(path))
    assert loaded.source == "file" and loaded.config == tiny_model.config
    assert loaded.sha256 == sha == weights_sha256(tiny_model)


def test_fp16_file_hash_is_that_of_the_stored_values(tmp_path, tiny_model):
    path = tmp_path / "m16.safetensors"
    sha = save_model(path, tiny_model, dtype="fp16")
    assert resolve_model(str(path)).sha256 == sha != weights_sha256(tiny_model)


def test_edited_weights_are_detected(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model)
    from safetensors.torch import load_file, safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["conv_in.bias"] = tensors["conv_in.bias"] + 1
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelError, match="sha256"):
        resolve_model(str(path))


def test_hub_id_resolves_from_the_local_cache_offline(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    sha = save_model(path, tiny_model)
    put_in_hub_cache(path, "acme/vidtwin-tiny")
    put_in_hub_cache(path, "acme/vidtwin-tiny", revision="v1")
    for spec in ("acme/vidtwin-tiny", "acme/vidtwin-tiny@v1", f"acme/vidtwin-tiny@{COMMIT}"):
        loaded = resolve_model(spec)
        assert loaded.source == "hub" and loaded.sha256 == sha


def test_hub_id_not_cached_offline_is_one_clear_error():
    with pytest.raises(ModelError, match="not in the local hub cache"):
        resolve_model("acme/never-downloaded@v9")


@pytest.mark.parametrize(
    ("spec", "error", "fragment"),
    [("nonsense", ModelError, "unknown model"), ("missing.safetensors", InputError, "no such model file")],
    ids=["unknown-name", "missing-file"],
)
def test_bad_model_specs(spec, error, fragment):
    with pytest.raises(error, match=fragment):
        resolve_model(spec)


def lightning_checkpoint(official: dict[str, torch.Tensor]) -> dict:
    """A checkpoint in the official Lightning layout: training-only loss.* keys and trainer state included."""
    state = dict(official)
    state["loss.logvar"] = torch.zeros(())
    state["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    return {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "2.6.6", "state_dict": state,
            "optimizer_states": [], "lr_schedulers": []}  # fmt: skip


def test_convert_official_checkpoint(tmp_path, cli, official_fixture):
    ckpt = tmp_path / "official.ckpt"
    torch.save(lightning_checkpoint(official_weights(official_fixture)), ckpt)
    out = tmp_path / "converted.safetensors"
    result = cli(["convert", ckpt, "-o", out, "--config", "tiny", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["parameters"] == 209_360
    model = resolve_model(str(out)).model.double()
    with torch.no_grad():
        recon = model(official_fixture["io.input"].double())
    torch.testing.assert_close(recon, official_fixture["ref64.reconstruction"], atol=1e-9, rtol=0)


def test_convert_round_trips_our_export(tmp_path, cli, tiny_model):
    """to_official is the inverse of the import map (weights exported for the official code load back)."""
    ckpt = tmp_path / "export.ckpt"
    torch.save({"state_dict": to_official(tiny_model.state_dict(), tiny_model.config)}, ckpt)
    out = tmp_path / "back.safetensors"
    assert cli(["convert", ckpt, "-o", out, "--config", "tiny"]).exit_code == 0
    assert resolve_model(str(out)).sha256 == weights_sha256(tiny_model)


class NotATensor:
    """Any class outside torch's safe list makes weights_only loading refuse the file."""


@pytest.mark.parametrize(
    ("make", "config", "fragment"),
    [
        (lambda p, w: torch.save({"state_dict": w, "hparams": NotATensor()}, p), "tiny", "arbitrary code"),
        (lambda p, w: p.write_bytes(b"not a checkpoint"), "tiny", "not a readable torch checkpoint"),
        (lambda p, w: torch.save({"state_dict": w}, p), "small", "config"),
        (lambda p, w: torch.save({"state_dict": {k: v for k, v in w.items() if "conv_in" not in k}}, p), "tiny", "missing: conv_in"),
        (lambda p, w: None, "tiny", "no such checkpoint"),
    ],
    ids=["pickled-code", "garbage", "wrong-config", "missing-keys", "missing-file"],
)
def test_convert_bad_input(tmp_path, cli, official_fixture, make, config, fragment):
    ckpt = tmp_path / "bad.ckpt"
    make(ckpt, official_weights(official_fixture))
    out = tmp_path / "out.safetensors"
    result = cli(["convert", ckpt, "-o", out, "--config", config])
    assert result.exit_code == 2
    assert fragment in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.slow
def test_info_json_for_release_preset(cli):
    result = cli(["info", "--model", "release", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["parameters"] == 312_701_490
    assert info["latent_shapes"] == {"structure": [16, 7, 7, 8], "dynamics_x": [8, 16, 7], "dynamics_y": [8, 16, 7]}
    assert info["latent_values_per_clip"] == 8064
    assert round(100 * info["compression_rate"], 3) == 0.335


def test_meta_device_build_matches_preset_counts():
    with torch.device("meta"):
        model = VidTwinAE(PRESETS["paper"])
    assert PRESETS["paper"].latent_values == 16 * 7 * 7 * 4 + 2 * 8 * 16 * 7
    assert sum(p.numel() for p in model.parameters()) < 312_701_490


def test_built_model_is_eval_mode():
    assert not build_model(PRESETS["tiny"]).training
