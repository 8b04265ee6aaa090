"""`vidtwin generate`: determinism, guidance, outputs and bad input, with a tiny DiT on the tiny AE."""

from __future__ import annotations

import json

import pytest
import torch

from models import PRESETS, Latents
from models.dit import DIT_PRESETS, LatentDiT
from vidtwin_cli.vtw.container import read_vtw
from vidtwin_cli.vtw.header import ModelRef
from vidtwin_cli.generation.weights import BUNDLED_DIT, load_dit_file, resolve_dit, save_dit, store_dit
from vidtwin_cli.generation.synth import CLASSES
from vidtwin_cli.video.io import VideoReader
from vidtwin_cli.codec.weights import resolve_model, save_model


@pytest.fixture(scope="module")
def dit_file(tmp_path_factory):
    """An untrained but non-trivial tiny DiT (outputs perturbed off zero) for the `tiny` AE preset."""
    ae = resolve_model("tiny")
    cfg = DIT_PRESETS["tiny"].for_autoencoder(ae.config.structure_shape, ae.config.dynamics_shape, len(CLASSES))
    torch.manual_seed(0)
    model = LatentDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    g = torch.Generator().manual_seed(0)
    model.tokens.fit_statistics(Latents(*(torch.randn(16, *s, generator=g) for s in
                                          (ae.config.structure_shape, ae.config.dynamics_shape, ae.config.dynamics_shape))))
    path = tmp_path_factory.mktemp("dit") / "dit.safetensors"
    save_dit(path, model, CLASSES, ModelRef("tiny", ae.sha256, ae.config))
    return path


@pytest.fixture(scope="module")
def other_ae(tmp_path_factory):
    """The tiny AE's config with other weights: the DiT must refuse it (weights sha256)."""
    model = resolve_model("tiny").model
    with torch.no_grad():
        model.conv_in.bias.add_(0.5)
    path = tmp_path_factory.mktemp("ae") / "other.safetensors"
    save_model(path, model)
    return path


def generate(cli, dit_file, out, *extra):
    return cli(["generate", "--dit", dit_file, "--class", "left", "--steps", 3, "--device", "cpu", "-o", out, *extra])


def test_same_seed_same_bytes_other_seed_other_latents(cli, dit_file, tmp_path):
    a, b, c = tmp_path / "a.vtw", tmp_path / "b.vtw", tmp_path / "c.vtw"
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        r = generate(cli, dit_file, path, "--seed", seed)
        assert r.exit_code == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert not torch.equal(read_vtw(a).latents.structure, read_vtw(c).latents.structure)


def test_vtw_records_the_dit_class_and_sampler(cli, dit_file, tmp_path):
    out = tmp_path / "s.vtw"
    r = generate(cli, dit_file, out, "--seed", 9, "--cfg", 2.5, "--eta", 0.5, "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    vtw = read_vtw(out)
    p = vtw.header.provenance
    assert (p["class"], p["class_id"]) == ("left", 1)
    assert p["sampler"] | {} == {"name": "ddim", "steps": 3, "eta": 0.5, "cfg": 2.5, "seed": 9,
                                 "schedule": {"num_steps": 1000, "beta_start": 1e-4, "beta_end": 0.02}}
    assert p["dit"]["weights_sha256"] == load_dit_file(dit_file).sha256 == report["dit_sha256"]
    assert vtw.header.model.spec == "tiny" and vtw.header.model.weights_sha256 == resolve_model("tiny").sha256
    assert vtw.header.clips == 1 and vtw.header.rows == 1
    assert tuple(vtw.latents.structure.shape[1:]) == PRESETS["tiny"].structure_shape


def test_guidance_changes_the_samples(cli, dit_file, tmp_path):
    outs = {cfg: tmp_path / f"cfg{cfg}.vtw" for cfg in (1, 5)}
    for cfg, path in outs.items():
        assert generate(cli, dit_file, path, "--cfg", cfg).exit_code == 0
    assert not torch.allclose(read_vtw(outs[1]).latents.structure, read_vtw(outs[5]).latents.structure)


def test_folder_of_decoded_videos(cli, dit_file, tmp_path):
    out = tmp_path / "videos"
    r = generate(cli, dit_file, out, "--num", 2, "--json")
    assert r.exit_code == 0, r.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["left_0000.mp4", "left_0001.mp4"] == [p.split("/")[-1] for p in json.loads(r.stdout)["outputs"]]
    cfg = PRESETS["tiny"]
    with VideoReader(files[0]) as video:
        frames = list(video)
    assert len(frames) == cfg.frames and frames[0].shape == (cfg.image_size, cfg.image_size, 3)


def test_folder_of_vtw_and_stdout(cli, dit_file, tmp_path):
    r = generate(cli, dit_file, tmp_path / "lat", "--num", 3, "--format", "vtw", "--seed", 1)
    assert r.exit_code == 0, r.stderr
    assert len(list((tmp_path / "lat").glob("left_*.vtw"))) == 3
    piped = generate(cli, dit_file, "-", "--seed", 1, "--quiet")
    assert piped.exit_code == 0
    single = tmp_path / "one.vtw"
    generate(cli, dit_file, single, "--seed", 1)
    assert piped.stdout == single.read_bytes()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--class", "sideways"], "unknown class"),
        (["--class", "7"], "unknown class"),
        (["--steps", "0"], "--steps"),
        (["--steps", "-3"], "--steps"),
        (["--eta", "-1"], "--eta"),
        (["--ae", "small"], "trained for autoencoder"),
        (["--ae", "OTHER_AE"], "trained for autoencoder"),
        (["--num", "2"], "takes one sample"),
        (["--format", "gif"], "--format"),
        (["--dit", "tiny"], "untrained preset"),
        (["--dit", "MISSING.safetensors"], "no such DiT file"),
    ],
    ids=["unknown-class", "class-id-out-of-range", "zero-steps", "negative-steps", "negative-eta", "other-ae-config", "other-ae-weights",
         "many-into-one-file", "bad-format", "preset-dit", "missing-dit"],
)
def test_bad_input(cli, dit_file, other_ae, tmp_path, args, fragment):
    out = tmp_path / "out" / "x.mp4" if "--format" not in args else tmp_path / "out"
    (tmp_path / "out").mkdir()
    base = {"--dit": str(dit_file), "--class": "left", "--steps": "2", "--device": "cpu", "-o": str(out)}
    flags = {k: str(other_ae) if v == "OTHER_AE" else v for k, v in zip(args[::2], args[1::2])}
    r = cli(["generate", *(x for k, v in (base | flags).items() for x in (k, v))])
    assert r.exit_code == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]  # --ae small: untrained
    assert len(errors) == 1 and fragment in errors[0], r.stderr
    assert list((tmp_path / "out").iterdir()) == []



@pytest.mark.parametrize("recorded", ["file", "hub"])
def test_the_autoencoder_a_dit_records_is_used_only_when_local(cli, dit_file, tmp_path, recorded):
    """As decode treats the model a .vtw records: a DiT file never makes generate open a path it names or
    download a hub model; --ae does, and .vtw output needs no autoencoder at all."""
    tiny = resolve_model("tiny")
    ae_file = tmp_path / "ae.safetensors"
    save_model(ae_file, tiny.model)
    spec = str(ae_file) if recorded == "file" else "acme/vidtwin"
    dit = tmp_path / "dit.safetensors"
    loaded = load_dit_file(dit_file)
    save_dit(dit, loaded.model, loaded.classes, ModelRef(spec, tiny.sha256, tiny.config))
    refused = generate(cli, dit, tmp_path / "a.mp4")
    fragment = "never chooses a file to load" if recorded == "file" else "never triggers a download"
    assert refused.exit_code == 2 and fragment in refused.stderr and "pass --ae" in refused.stderr, refused.stderr
    assert f"DiT '{dit}' records" in refused.stderr and not (tmp_path / "a.mp4").exists()
    assert generate(cli, dit, tmp_path / "b.mp4", "--ae", ae_file).exit_code == 0
    assert generate(cli, dit, tmp_path / "c.vtw").exit_code == 0

def test_info_shows_a_dits_parameters(cli, dit_file):
    r = cli(["info", "--dit", "pseudo", "--json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["parameters"], info["paper_parameters"]) == (34_238_048, 12_610_560)
    r = cli(["info", "--dit", dit_file, "--json"])
    info = json.loads(r.stdout)
    assert info["classes"] == list(CLASSES) and info["autoencoder"]["spec"] == "tiny"
    assert info["parameters"] == load_dit_file(dit_file).model.parameter_count()


def test_fp16_copy_loads_with_its_own_fingerprint(dit_file, tmp_path):
    half = tmp_path / "half.safetensors"
    sha = store_dit(dit_file, half, "fp16")
    loaded, original = load_dit_file(half), load_dit_file(dit_file)
    assert loaded.sha256 == sha != original.sha256  # the stored (rounded) values are what is fingerprinted
    assert half.stat().st_size < 0.6 * dit_file.stat().st_size
    assert (loaded.classes, loaded.autoencoder) == (original.classes, original.autoencoder)


def test_default_dit_is_for_the_bundled_autoencoder():
    """Fails when the bundled autoencoder changes without remaking the DiT (scripts/train_default_dit.sh)."""
    dit = resolve_dit()
    assert (dit.source, dit.classes) == ("bundled", tuple(sorted(CLASSES)))
    assert dit.autoencoder.spec == "default" and dit.autoencoder.weights_sha256 == resolve_model().sha256
    assert BUNDLED_DIT.stat().st_size < 10 * 2**20  # a few MB in the package


def test_generate_out_of_the_box(cli, tmp_path):
    r = cli(["generate", "--class", "left", "--steps", 2, "--device", "cpu", "-o", tmp_path / "left.mp4", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dit"] == "default"
    with VideoReader(tmp_path / "left.mp4") as video:
        ae = resolve_model().config
        assert (video.width, video.height, len(list(video))) == (ae.image_size, ae.image_size, ae.frames)
