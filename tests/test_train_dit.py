"""`vidtwin train dit` on a tiny synth-motion set: outputs, exact resume, cache reuse, bad input."""

from __future__ import annotations

import json

import pytest

from vidtwin_cli.generation.weights import load_dit_file
from vidtwin_cli.generation.synth import SynthSettings, write_dataset

TRAIN = ["--ae", "tiny", "--preset", "tiny", "--batch-size", 4, "--log-every", 1, "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Two 32×32, 6-frame videos per class (the tiny AE's clip), written with PyAV."""
    root = tmp_path_factory.mktemp("synth") / "train"
    write_dataset(root, 2, seed=7, settings=SynthSettings(size=32, frames=6))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def train(cli, out, synth, cache, *extra):
    return cli(["train", "dit", "--out", out, "--data", synth, "--labels-from-folders", "--cache", cache, *TRAIN, *extra])


@pytest.mark.slow
def test_train_resume_and_generate(cli, tmp_path, synth, cache):
    straight = train(cli, tmp_path / "a", synth, cache, "--steps", 4, "--json")
    assert straight.exit_code == 0, straight.stderr
    summary = json.loads(straight.stdout)
    assert summary["steps"] == 4 and summary["clips"] == 8 and summary["classes"] == ["down", "left", "right", "up"]
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3, 4] and all("loss" in m for m in lines)
    assert len(list(cache.glob("*.vtw"))) == 8

    half = train(cli, tmp_path / "b", synth, cache, "--steps", 2)
    assert half.exit_code == 0, half.stderr
    resumed = cli(["train", "dit", "--out", tmp_path / "b", "--resume", "--steps", 4, "--device", "cpu", "--quiet"])
    assert resumed.exit_code == 0, resumed.stderr
    a, b = load_dit_file(tmp_path / "a" / "model.safetensors"), load_dit_file(tmp_path / "b" / "model.safetensors")
    assert a.sha256 == b.sha256  # an interrupted-and-resumed run equals an uninterrupted one
    assert a.classes == ("down", "left", "right", "up") and a.autoencoder.spec == "tiny"
    assert len(list(cache.glob("*.vtw"))) == 8  # the cache was reused, not re-filled

    out = tmp_path / "gen"
    r = cli(["generate", "--dit", tmp_path / "a" / "model.safetensors", "--class", "up", "--num", 2, "--steps", 2,
             "--device", "cpu", "-o", out, "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["outputs"]) == 2 and len(list(out.glob("up_*.mp4"))) == 2


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--labels-from-folders", "--ae", "tiny"], "--data"),
        (["--data", "SYNTH", "--ae", "tiny"], "--labels"),
        (["--data", "SYNTH", "--labels-from-folders"], "--ae"),
        (["--data", "SYNTH", "--labels-from-folders", "--ae", "tiny", "--preset", "huge"], "unknown DiT preset"),
        (["--data", "SYNTH", "--labels-from-folders", "--ae", "tiny", "--set", "bogus=1"], "bogus"),
        (["--data", "SYNTH/up", "--labels-from-folders", "--ae", "tiny"], "no videos"),
        (["--resume"], "no checkpoint"),
    ],
    ids=["folders-without-data", "no-labels", "no-ae", "bad-preset", "unknown-field", "one-folder-no-classes", "resume-nothing"],
)
def test_bad_input(cli, tmp_path, synth, args, fragment):
    out = tmp_path / "run"
    args = [str(a).replace("SYNTH", str(synth)) for a in args]
    r = cli(["train", "dit", "--out", out, "--steps", 1, "--device", "cpu", *args])
    assert r.exit_code == 2, r.stderr
    assert fragment in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (out / "config.json").exists()


def test_labels_csv_and_no_overwrite(cli, tmp_path, synth, cache):
    first = cli(["train", "dit", "--out", tmp_path / "run", "--labels", synth / "labels.csv", "--cache", cache,
                 *TRAIN, "--steps", 1, "--json"])  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["classes"] == ["down", "left", "right", "up"]
    again = train(cli, tmp_path / "run", synth, cache, "--steps", 1)
    assert again.exit_code == 2 and "already holds a training run" in again.stderr
