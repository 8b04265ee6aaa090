"""The Python API (`vidtwin_cli.api`, re-exported by the package) on real files and arrays."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

import vidtwin_cli as vt
from vidtwin_cli.video.io import VideoReader

from .conftest import write_test_video


@pytest.fixture(scope="module")
def model():
    return vt.load_model("tiny", precision="fp32")  # exact comparisons below; "auto" may pick bf16


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("api") / "clip.mp4", 48, 40, 17, fps=Fraction(25))


def test_every_exported_name_resolves_and_unknown_names_do_not():
    assert all(getattr(vt, name) is not None for name in vt.__all__)
    with pytest.raises(AttributeError):
        vt.no_such_name  # noqa: B018


def test_in_memory_encode_written_is_the_file_encode_byte_for_byte(model, clip, tmp_path):
    result = vt.encode(clip, tmp_path / "a.vtw", model=model)
    latents = vt.encode(clip, model=model)
    assert vt.write(tmp_path / "b.vtw", latents) == result.bytes
    assert (tmp_path / "a.vtw").read_bytes() == (tmp_path / "b.vtw").read_bytes()
    assert result.frames == 17 and (result.width, result.height) == (48, 40)
    assert json.loads(json.dumps(result.to_json()))["output"] == str(tmp_path / "a.vtw")


def test_frames_array_encodes_like_the_file_it_came_from(model, clip):
    with VideoReader(clip) as video:
        frames = np.stack(list(video))
    from_file = vt.encode(clip, model=model).latents
    for array in (frames, torch.from_numpy(frames)):
        from_array = vt.encode(array, model=model, fps=25)
        assert torch.equal(from_array.latents.structure, from_file.structure)
        assert from_array.header.video.frame_count == 17 and from_array.header.video.fps == 25


def test_decoded_frames_stream_with_the_source_count_from_file_or_memory(model, clip, tmp_path):
    latents = vt.encode(clip, model=model, options=vt.EncodeOptions(dtype="fp32"))
    vt.write(tmp_path / "a.vtw", latents)
    in_memory = list(vt.decode(latents, model=model))
    recorded = vt.ModelSession(None, "cpu", "fp32", batch_size=8)  # no spec: the model the file records, tiny
    from_file = list(vt.decode(tmp_path / "a.vtw", model=recorded))
    assert len(in_memory) == 17 and in_memory[0].shape == (40, 48, 3) and in_memory[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(in_memory, from_file, strict=True))
    result = vt.decode(tmp_path / "a.vtw", tmp_path / "a.mp4", model=model, video=vt.VideoOutput(crf=0))
    assert (result.frames, result.width, result.height) == (17, 48, 40)
    with VideoReader(tmp_path / "a.mp4") as video:
        assert sum(1 for _ in video) == 17


def test_swap_read_inspect_verify(model, clip, tmp_path):
    vt.encode(clip, tmp_path / "a.vtw", model=model)
    swapped = vt.swap(tmp_path / "a.vtw", tmp_path / "a.vtw", tmp_path / "s.vtw", model=model,
                      options=vt.SwapOptions(span="0:0.2"))
    assert swapped.clips_swapped == 1 and swapped.bytes == (tmp_path / "s.vtw").stat().st_size
    assert vt.read(tmp_path / "s.vtw").header.provenance["swap"]["range"] == "0:0.2"
    assert vt.inspect(tmp_path / "a.vtw").to_json()["video"]["frame_count"] == 17
    assert vt.verify(tmp_path / "a.vtw").valid
    (tmp_path / "bad.vtw").write_bytes((tmp_path / "a.vtw").read_bytes()[:-10])
    assert not vt.verify(tmp_path / "bad.vtw").valid


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: vt.EncodeOptions(fit="stretch"), "--fit"),
    (lambda: vt.EncodeOptions(dtype="fp8"), "--dtype"),
    (lambda: vt.EncodeOptions(seed=3), "--seed"),
    (lambda: vt.DecodeOptions(only="both"), "--only"),
    (lambda: vt.SwapOptions(dtype="int4"), "--dtype"),
    (lambda: vt.VideoOutput(codec="nosuch"), "nosuch"),
    (lambda: vt.VideoOutput(codec="mjpeg", crf=20), "CRF"),
], ids=["fit", "dtype", "seed-without-sample", "only", "swap-dtype", "codec", "crf"])
def test_options_are_checked_once_on_construction(make, fragment):
    with pytest.raises(vt.UsageError, match=fragment):
        make()


def test_bad_input_raises_the_error_family(model, tmp_path):
    with pytest.raises(vt.InputError, match="no such file"):
        vt.encode(tmp_path / "none.mp4", model=model)
    with pytest.raises(vt.InputError, match="fps"):
        vt.encode(np.zeros((3, 8, 8, 3), np.uint8), model=model)
    with pytest.raises(vt.InputError, match="uint8"):
        vt.encode(np.zeros((3, 8, 8, 3), np.float32), model=model, fps=25)
    with pytest.raises(vt.ModelError, match="unknown model"):
        vt.load_model("nosuch")
    assert dataclasses.is_dataclass(vt.EncodeOptions()) and vt.EncodeOptions.__dataclass_params__.frozen
