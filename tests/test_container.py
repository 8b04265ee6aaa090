"""The .vtw container: round trips per dtype, stdin/stdout, the spec's checksum and version rules.

`tiny_vtw`, `unpack` and `forge` are shared with test_cli_inspect_verify.py and test_vtw_fuzz.py.
`forge` signs files from the text of docs/vtw-format.md (not from the implementation), so the
checksum definition is tested, and lets tests build files that are well signed but inconsistent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import struct
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import safe_open
from safetensors.torch import save as st_save

from models import PRESETS, Latents
from vidtwin_cli.vtw.container import (
    LATENT_DTYPES,
    ModelRef,
    VtwFile,
    VtwHeader,
    VtwWriter,
    open_vtw,
    read_vtw,
    verify_vtw,
    write_vtw,
)
from vidtwin_cli.vtw.figures import TensorSize, VtwFigures
from vidtwin_cli.vtw.header import MAGIC
from vidtwin_cli.errors import ContainerError, InputError, RuntimeFailure, UsageError
from vidtwin_cli.video.info import Geometry, VideoInfo

from .conftest import DATA, REPO

GOLDEN = DATA / "vtw" / "v1.0-int8-vfr.vtw"  # regenerate: VIDTWIN_GENERATE_EXPECTED=1 pytest tests/test_container.py
WEIGHTS_SHA = "5" * 64


def tiny_vtw(dtype: str = "fp16", width: int = 50, height: int = 40, frames: int = 13, fit: str = "tile",
             vfr: bool = False, rng_seed: int = 0, **fields) -> VtwFile:
    """A valid VtwFile of the tiny preset's shapes with seeded random latents; `fields` go to VtwHeader."""
    cfg = PRESETS["tiny"]
    fps = Fraction(30000, 1001)
    pts = tuple(3003 * i + (500 if vfr and i % 3 == 2 else 0) for i in range(frames)) if vfr else None
    video = VideoInfo(width, height, fps, Fraction(1, 90000), frames, float(frames / fps), pts, "h264")
    geometry = Geometry.plan(width, height, cfg.image_size, fit)
    clips = -(-frames // cfg.frames)
    rows = clips * geometry.tiles_per_clip
    g = torch.Generator().manual_seed(rng_seed)
    latents = Latents(
        torch.randn(rows, *cfg.structure_shape, generator=g),
        torch.randn(rows, *cfg.dynamics_shape, generator=g),
        torch.randn(rows, *cfg.dynamics_shape, generator=g),
    )
    return VtwFile(VtwHeader(ModelRef("tiny", WEIGHTS_SHA, cfg), video, geometry, clips, dtype, **fields), latents)


def unpack(data: bytes) -> tuple[dict[str, torch.Tensor], dict, dict[str, str]]:
    """(tensors, the JSON header, the metadata) of a .vtw's bytes."""
    (n,) = struct.unpack_from("<Q", data)
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    return st_load(data), json.loads(meta["header"]), meta


def forge(tensors: dict[str, torch.Tensor], header: dict | str, version: str = "1.0", magic: str = MAGIC) -> bytes:
    """A .vtw built and signed as docs/vtw-format.md specifies (sha256 of header, then tensors by name)."""
    text = header if isinstance(header, str) else json.dumps(header)
    sha = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(tensors):
        sha.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return st_save(tensors, {"magic": magic, "version": version, "header": text, "sha256": sha.hexdigest()})


def write_bytes(tmp_path: Path, data: bytes, name: str = "f.vtw") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def vtw_bytes(vtw: VtwFile, tmp_path: Path) -> bytes:
    path = tmp_path / "source.vtw"
    write_vtw(path, vtw)
    return path.read_bytes()


def max_error(a: Latents, b: Latents) -> float:
    return max((getattr(a, k) - getattr(b, k)).abs().max().item() for k in ("structure", "dynamics_x", "dynamics_y"))


# Worst-case |read - written| for N(0, 1) latents (|x| < 6 here): half a unit in the last place of
# fp16/bf16 at 4 ≤ |x| < 8, and half an int8 step of the largest |x| (6 / 127 / 2).
TOLERANCE = {"fp32": 0.0, "fp16": 2.0**-9, "bf16": 2.0**-6, "int8": 6 / 254}


@pytest.mark.parametrize("dtype", list(LATENT_DTYPES))
def test_round_trip_keeps_metadata_and_values_within_the_dtype(tmp_path, dtype):
    vtw = tiny_vtw(dtype, vfr=True, sampled=True, seed=7, provenance={"dit": "tiny-dit", "steps": 25})
    path = tmp_path / "a.vtw"
    nbytes = write_vtw(path, vtw)
    back = read_vtw(path)
    assert nbytes == path.stat().st_size
    assert back.header == vtw.header  # model, video (timestamps too), geometry, dtype, sampling, provenance
    assert (back.header.clips, back.header.tiles_per_clip, back.header.rows) == (3, 4, 12)
    for name in ("structure", "dynamics_x", "dynamics_y"):
        assert getattr(back.latents, name).dtype == torch.float32
        assert getattr(back.latents, name).shape == getattr(vtw.latents, name).shape
    assert max_error(back.latents, vtw.latents) <= TOLERANCE[dtype]


def test_smaller_dtypes_make_smaller_files(tmp_path):
    sizes = {dt: write_vtw(tmp_path / f"{dt}.vtw", tiny_vtw(dt)) for dt in LATENT_DTYPES}
    assert sizes["int8"] < sizes["fp16"] == sizes["bf16"] < sizes["fp32"]


def test_int8_zero_channel_and_exact_scale(tmp_path):
    vtw = tiny_vtw("int8")
    vtw.latents.structure[0, ..., 0] = 0.0  # one all-zero channel: scale 0, values stay exactly 0
    write_vtw(tmp_path / "z.vtw", vtw)
    tensors, _, _ = unpack((tmp_path / "z.vtw").read_bytes())
    assert tensors["structure_scale"].shape == (12, 5) and tensors["dynamics_x_scale"].shape == (12, 7)
    assert tensors["structure_scale"][0, 0] == 0
    back = read_vtw(tmp_path / "z.vtw").latents.structure
    assert torch.all(back[0, ..., 0] == 0)
    peak = vtw.latents.structure[1, ..., 2].abs().max()  # the channel's largest value is stored exactly (±127)
    assert torch.isclose(back[1, ..., 2].abs().max(), peak)


def test_stdout_and_stdin(tmp_path, capsysbinary, monkeypatch):
    vtw = tiny_vtw("bf16")
    nbytes = write_vtw("-", vtw)
    data = capsysbinary.readouterr().out
    assert len(data) == nbytes
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert max_error(read_vtw("-").latents, vtw.latents) <= TOLERANCE["bf16"]


def test_resize_and_crop_use_one_tile(tmp_path):
    for fit in ("resize", "crop"):
        write_vtw(tmp_path / "r.vtw", tiny_vtw(fit=fit, frames=1))
        back = read_vtw(tmp_path / "r.vtw")
        assert (back.header.geometry.fit, back.header.rows, back.header.clips) == (fit, 1, 1)


def test_figures(tmp_path):
    vtw = tiny_vtw("fp16")
    nbytes = write_vtw(tmp_path / "d.vtw", vtw)
    f = VtwFigures.of(vtw.header, nbytes)
    cfg = PRESETS["tiny"]
    assert f.tensor_bytes == 2 * 12 * cfg.latent_values and f.overhead_bytes == nbytes - f.tensor_bytes
    assert f.tensors["structure"] == TensorSize("F16", (12, *cfg.structure_shape), 2 * 12 * 240)
    assert f.bitrate_bps == pytest.approx(nbytes * 8 / vtw.header.video.duration)
    assert f.compression_vs_raw == pytest.approx(13 * 50 * 40 * 3 / nbytes)
    assert f.latent_values_per_clip == 4 * cfg.latent_values and f.key_interval == 1 and f.coded is None
    d = f.to_dict()  # the JSON spelling `vidtwin inspect --json` prints
    assert d["tensors"]["structure"] == {"dtype": "F16", "shape": [12, *cfg.structure_shape], "bytes": 2 * 12 * 240}
    assert d["compression_rate"] == cfg.compression_rate and "streams" not in d


def test_inconsistent_values_are_a_programming_error():
    good = tiny_vtw()
    h = good.header
    with pytest.raises(ValueError, match="latent rows"):
        VtwFile(h, good.latents.select(slice(0, 8)))
    with pytest.raises(ValueError, match="shape"):
        VtwFile(h, Latents(good.latents.structure[..., :4], good.latents.dynamics_x, good.latents.dynamics_y))
    with pytest.raises(ValueError, match="dtype"):
        VtwHeader(h.model, h.video, h.geometry, h.clips, "fp8")
    with pytest.raises(ValueError, match="clips"):
        VtwHeader(h.model, h.video, h.geometry, 2)


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.vtw"
    path.write_bytes(b"old")
    bad = tiny_vtw()
    bad.latents.dynamics_y[3, 0, 0, 0] = float("nan")
    with pytest.raises(RuntimeFailure, match="non-finite"):
        write_vtw(path, bad)
    huge = tiny_vtw()
    huge.latents.structure[0, 0, 0, 0, 0] = 1e6
    with pytest.raises(UsageError, match="bf16 or fp32"):
        write_vtw(path, huge)
    with pytest.raises(InputError, match="does not exist"):
        write_vtw(tmp_path / "missing" / "x.vtw", tiny_vtw())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.vtw"] and path.read_bytes() == b"old"


def test_newer_minor_version_with_extra_keys_and_tensors_is_read(tmp_path):
    tensors, header, _ = unpack(vtw_bytes(tiny_vtw("int8"), tmp_path))
    header["future_key"] = {"anything": [1, 2]}
    tensors["future_tensor"] = torch.arange(4, dtype=torch.int32)
    back = read_vtw(write_bytes(tmp_path, forge(tensors, header, version="1.7")))
    assert back.header.rows == 12
    with pytest.raises(ContainerError, match="unexpected tensor"):
        read_vtw(write_bytes(tmp_path, forge(tensors, header, version="1.0")))


def test_anamorphic_video_makes_a_1_1_file_and_square_pixels_stay_1_0(tmp_path):
    square = tiny_vtw("int8")
    wide = VtwFile(dataclasses.replace(square.header, video=dataclasses.replace(square.header.video,
                   sample_aspect=Fraction(4, 3))), square.latents)  # fmt: skip
    _, header, meta = unpack(vtw_bytes(square, tmp_path))
    assert meta["version"] == "1.0" and "sample_aspect" not in header["video"]
    _, header, meta = unpack(vtw_bytes(wide, tmp_path))
    assert meta["version"] == "1.1" and header["video"]["sample_aspect"] == [4, 3]
    assert read_vtw(tmp_path / "source.vtw").header == wide.header


def _edit_header(**changes):
    def edit(tensors: dict, header: dict) -> None:
        for dotted, value in changes.items():
            *parents, key = dotted.split(".")
            node = header
            for p in parents:
                node = node[p]
            node[key] = value
    return edit


def _set_tensor(name: str, value: float):
    def edit(tensors: dict, header: dict) -> None:
        tensors[name].reshape(-1)[5] = value
    return edit


# Well signed (the checksum is right) but inconsistent or hostile content.
SIGNED_BAD = [
    ("clip_count", _edit_header(clips=2), "clips"),
    ("tiles_vs_grid", _edit_header(tiles_per_clip=3), "tile grid"),
    ("frame_count", _edit_header(**{"video.frame_count": 30}), "30 frames"),
    ("huge_config", _edit_header(**{"model.config.structure_blocks": 10**12}), "plausible"),
    ("config_type", _edit_header(**{"model.config.frames": "6"}), "plausible"),
    ("unknown_config_field", _edit_header(**{"model.config.extra": 1}), "unknown VidTwin config"),
    ("video_size", _edit_header(**{"video.width": 0}), r"video.width must be an integer in 1\.\.16384"),
    ("sample_aspect", _edit_header(**{"video.sample_aspect": [0, 1]}), "video.sample_aspect must be"),
    ("geometry", _edit_header(**{"geometry.rows": 7}), "does not cover"),
    ("dtype_name", _edit_header(latent_dtype="fp64"), "latent_dtype must be fp16"),
    ("weights_sha", _edit_header(**{"model.weights_sha256": "xyz"}), "64 lowercase hex"),
    ("nan_latent", _set_tensor("structure", float("nan")), "non-finite"),  # on an fp16 file
    ("negative_scale", _set_tensor("dynamics_x_scale", -1.0), "negative or non-finite"),
    ("missing_key", lambda t, h: h.pop("geometry"), "'geometry' is missing"),
    ("missing_tensor", lambda t, h: t.pop("dynamics_y"), "'dynamics_y' is missing"),
    # Lax JSON types: each was accepted (and decoded) before the header was validated field by field.
    ("duration_text", _edit_header(**{"video.duration": "inf"}), "video.duration must be a finite number"),
    ("width_text", _edit_header(**{"video.width": "50"}), "video.width must be an integer"),
    ("width_float", _edit_header(**{"video.width": 50.7}), "video.width must be an integer"),
    ("frame_count_float", _edit_header(**{"video.frame_count": 13.9}), "video.frame_count must be an integer"),
    ("frame_count_bool", _edit_header(**{"video.frame_count": True}), "video.frame_count must be an integer"),
    ("codec_number", _edit_header(**{"video.codec": 5}), "video.codec must be a string"),
    ("fps_huge", _edit_header(**{"video.fps": [2**70, 1]}), "video.fps must be"),
    ("fps_bool", _edit_header(**{"video.fps": [True, 1]}), "video.fps must be"),
    ("geometry_float", _edit_header(**{"geometry.rows": 2.0}), "geometry.rows must be an integer"),
    ("sampled_missing", lambda t, h: h.pop("sampled"), "'sampled' is missing"),
    ("sampled_int", _edit_header(sampled=0), "sampled must be true or false"),
    ("seed_float", _edit_header(seed=1.5), "seed must be an integer"),
    ("spec_number", _edit_header(**{"model.spec": 7}), "model.spec must be a string"),
    ("spec_huge", _edit_header(**{"model.spec": "x" * 5000}), "model.spec must be a string of at most"),
    ("tool_object", _edit_header(**{"created_by.tool": {}}), "created_by.tool must be a string"),
    ("provenance_list", _edit_header(provenance=[]), "provenance must be an object"),
    ("lone_surrogate", _edit_header(**{"created_by.tool": "\ud800"}), "lone surrogate"),
]


@pytest.mark.parametrize(("edit", "fragment"), [c[1:] for c in SIGNED_BAD], ids=[c[0] for c in SIGNED_BAD])
def test_signed_but_inconsistent_files_are_rejected(tmp_path, edit, fragment):
    dtype = "fp16" if fragment == "non-finite" else "int8"
    tensors, header, _ = unpack(vtw_bytes(tiny_vtw(dtype), tmp_path))
    tensors = {k: v.clone() for k, v in tensors.items()}
    edit(tensors, header)
    path = write_bytes(tmp_path, forge(tensors, header))
    with pytest.raises(ContainerError, match=fragment) as caught:
        read_vtw(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
    assert verify_vtw(path).valid is False


def test_forged_valid_file_is_accepted(tmp_path):
    """The checksum definition in docs/vtw-format.md matches what the reader computes."""
    tensors, header, meta = unpack(vtw_bytes(tiny_vtw("fp16", vfr=True), tmp_path))
    assert unpack(forge(tensors, meta["header"]))[2]["sha256"] == meta["sha256"]
    assert read_vtw(write_bytes(tmp_path, forge(tensors, header))).header.video.pts is not None


def test_files_are_reproducible_and_plain_safetensors(tmp_path):
    """Same content, same bytes; and the safetensors library reads tensors and metadata."""
    first, second = vtw_bytes(tiny_vtw("int8", vfr=True), tmp_path), vtw_bytes(tiny_vtw("int8", vfr=True), tmp_path)
    assert first == second
    path = write_bytes(tmp_path, first)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["magic"] == MAGIC and set(f.keys()) >= {"structure", "structure_scale", "pts"}


@pytest.mark.parametrize("dtype", ["int8", "fp16"])
def test_streaming_writer_and_reader_match_whole_file_io(tmp_path, dtype):
    vtw = tiny_vtw(dtype, vfr=True)
    h = vtw.header
    with VtwWriter(tmp_path / "s.vtw", h.model, h.geometry, dtype) as writer:
        for start in range(0, h.rows, 5):  # batches that do not line up with clips
            writer.add(vtw.latents.select(slice(start, start + 5)))
        nbytes = writer.finish(h.video)
    assert writer.header == h and nbytes == (tmp_path / "s.vtw").stat().st_size
    assert (tmp_path / "s.vtw").read_bytes() == vtw_bytes(vtw, tmp_path)
    whole = read_vtw(tmp_path / "s.vtw").latents
    with open_vtw(tmp_path / "s.vtw") as reader:
        clips = list(reader.iter_clips())
        assert len(clips) == h.clips and reader.clip(1).structure.shape[0] == h.tiles_per_clip
    assert max_error(Latents.cat(clips), whole) == 0


def test_abandoned_or_inconsistent_stream_writes_nothing(tmp_path):
    vtw = tiny_vtw()
    h = vtw.header
    with pytest.raises(KeyboardInterrupt), VtwWriter(tmp_path / "a.vtw", h.model, h.geometry) as writer:
        writer.add(vtw.latents.select(slice(0, 4)))
        raise KeyboardInterrupt
    with VtwWriter(tmp_path / "b.vtw", h.model, h.geometry) as writer:
        writer.add(vtw.latents.select(slice(0, 4)))  # one clip of 4 tiles, but 13 frames need 3 clips
        with pytest.raises(ValueError, match="1 clips, but 13 frames"):
            writer.finish(h.video)
        with pytest.raises(ValueError, match="shape"):
            writer.add(Latents(vtw.latents.structure[:, :1], vtw.latents.dynamics_x, vtw.latents.dynamics_y))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["int8", "bf16"])
def test_spec_example_reader_agrees(tmp_path, dtype):
    """The independent reader in docs/vtw-format.md section 9 reads what vidtwin writes."""
    doc = (REPO / "docs" / "vtw-format.md").read_text()
    code = doc.split("## 9.", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/vtw-format.md", "exec"), namespace)
    vtw = tiny_vtw(dtype, vfr=True)
    header, latents = namespace["read_vtw_minimal"](vtw_bytes(vtw, tmp_path))
    assert header["clips"] == vtw.header.clips and header["video"]["width"] == vtw.header.video.width
    assert max_error(Latents(**latents), read_vtw(tmp_path / "source.vtw").latents) == 0


def test_golden_v1_0_file_still_reads(tmp_path):
    """A file written by format 1.0; readers of every 1.x must keep reading it."""
    expected = tiny_vtw("int8", width=50, height=20, frames=7, vfr=True, sampled=True, seed=3,
                        tool_version="0.1.0", provenance={"note": "golden"})
    if os.environ.get("VIDTWIN_GENERATE_EXPECTED"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        write_vtw(GOLDEN, expected)
    if not GOLDEN.is_file():
        pytest.fail(f"golden file missing: {GOLDEN} (VIDTWIN_GENERATE_EXPECTED=1 writes it)")
    back = read_vtw(GOLDEN)
    assert back.header == expected.header and back.header.seed == 3 and back.header.rows == 4
    assert max_error(back.latents, expected.latents) <= TOLERANCE["int8"]
    assert vtw_bytes(expected, tmp_path) == GOLDEN.read_bytes()  # the writer still produces 1.0 byte for byte
