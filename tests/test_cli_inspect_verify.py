"""`vidtwin inspect` and `vidtwin verify` through the real entry point, good files and hostile ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save, save_file

from models import PRESETS
from vidtwin_cli.codec.weights import build_model, save_model

from .test_container import forge, tiny_vtw, unpack, vtw_bytes

SAMPLE_VIDEO = Path(__file__).resolve().parents[1] / "vidtwin_cli" / "data" / "sample.mp4"
INSPECT_KEYS = {"file", "format_version", "sha256", "model", "video", "geometry", "latent_dtype", "clips",
                "tiles_per_clip", "rows", "sampled", "seed", "created_by", "provenance", "tensors", "file_bytes",
                "tensor_bytes", "bitrate_bps", "compression_vs_raw", "compression_rate", "latent_values_per_clip"}


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.vtw"
    path.write_bytes(vtw_bytes(tiny_vtw("int8", vfr=True), tmp_path))
    return path


def test_inspect_json_on_stdout(cli, good):
    r = cli(["inspect", good, "--json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert INSPECT_KEYS <= set(info)
    assert info["file_bytes"] == good.stat().st_size and info["latent_dtype"] == "int8"
    assert info["bitrate_bps"] == pytest.approx(info["file_bytes"] * 8 / info["video"]["duration"])
    assert info["tensors"]["structure"]["shape"] == [12, 3, 4, 4, 5]


def test_inspect_table_goes_to_stderr_only(cli, good):
    r = cli(["inspect", good])
    assert r.exit_code == 0 and r.stdout == b""
    assert "bitrate equivalent" in r.stderr and "structure_scale" in r.stderr and "50×40" in r.stderr


def test_verify_ok_and_json(cli, good):
    r = cli(["verify", good])
    assert (r.exit_code, r.stdout) == (0, b"") and ": ok (vtw 1.0" in r.stderr
    r = cli(["verify", good, "--json"])
    report = json.loads(r.stdout)
    assert r.exit_code == 0 and report["valid"] is True and report["file_bytes"] == good.stat().st_size


def test_both_read_stdin(cli, good):
    assert json.loads(cli(["inspect", "-", "--json"], input=good.read_bytes()).stdout)["file"] == "<stdin>"
    r = cli(["verify", "-"], input=good.read_bytes())
    assert r.exit_code == 0 and r.stderr.startswith("<stdin>: ok")
    r = cli(["verify", "-"], input=good.read_bytes()[:-1])
    assert r.exit_code == 1 and "<stdin>: truncated" in r.stderr


def test_verify_json_reports_an_invalid_file(cli, good):
    damaged = good.with_name("damaged.vtw")
    damaged.write_bytes(good.read_bytes()[:-10])
    r = cli(["verify", damaged, "--json"])
    report = json.loads(r.stdout)
    assert r.exit_code == 1 and report["valid"] is False and "truncated" in report["error"]


# --------------------------------------------------------------------------- hostile inputs


def _flip(offset_from_end: int):
    def make(good: Path, tmp: Path) -> Path:
        data = bytearray(good.read_bytes())
        data[-offset_from_end] ^= 0x40
        return _put(tmp, bytes(data))
    return make


def _metadata(**changes):
    """The same tensors and header with some metadata strings replaced."""
    def make(good: Path, tmp: Path) -> Path:
        tensors, _, meta = unpack(good.read_bytes())
        return _put(tmp, save(tensors, {**meta, **changes}))
    return make


def _put(tmp: Path, data: bytes, name: str = "bad.vtw") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _plain_safetensors(good: Path, tmp: Path) -> Path:
    path = tmp / "plain.vtw"
    save_file({"weight": torch.zeros(3, 4)}, str(path))
    return path


def _model_file(good: Path, tmp: Path) -> Path:
    path = tmp / "model.safetensors"
    save_model(path, build_model(PRESETS["tiny"]))
    return path


def _corrupt_header_json(good: Path, tmp: Path) -> Path:
    data = bytearray(good.read_bytes())
    data[8] = ord("[")  # the header's opening brace
    return _put(tmp, bytes(data))


def _shape_mismatch(good: Path, tmp: Path) -> Path:
    tensors, header, _ = unpack(good.read_bytes())
    tensors["structure"] = tensors["structure"][:, :2].contiguous()  # n_q 3 -> 2, re-signed
    return _put(tmp, forge(tensors, header))


def _directory(good: Path, tmp: Path) -> Path:
    (tmp / "dir.vtw").mkdir()
    return tmp / "dir.vtw"


def _flip_in_header(good: Path, tmp: Path) -> Path:
    data = bytearray(good.read_bytes())
    at = data.index(b'\\"frame_count\\":') + 17  # a digit inside the signed JSON header string
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    return _put(tmp, bytes(data))


# (id, make the hostile path, stderr fragment, inspect exit, verify exit)
BAD = [
    ("empty", lambda g, t: _put(t, b""), "empty file", 2, 1),
    ("tiny_file", lambda g, t: _put(t, b"\x01\x02\x03"), "too short", 2, 1),
    ("truncated_data", lambda g, t: _put(t, g.read_bytes()[:-700]), "truncated", 2, 1),
    ("truncated_header", lambda g, t: _put(t, g.read_bytes()[:300]), "truncated", 2, 1),
    ("bit_flip_tensor", _flip(40), "checksum mismatch", 2, 1),
    ("bit_flip_header_string", _flip_in_header, "checksum mismatch", 2, 1),
    ("corrupt_header_json", _corrupt_header_json, "not valid JSON", 2, 1),
    ("bad_magic", _metadata(magic="vidtwin.vtx"), "bad magic 'vidtwin.vtx'", 2, 1),
    ("future_major", _metadata(version="2.0"), "format version 2.0 is not supported", 2, 1),
    ("version_garbage", _metadata(version="one"), "unreadable format version", 2, 1),
    ("plain_safetensors", _plain_safetensors, "not a .vtw file", 2, 1),
    ("model_file", _model_file, "format='vidtwin-ae'", 2, 1),
    ("video_file", lambda g, t: SAMPLE_VIDEO, "not a .vtw file", 2, 1),
    ("shape_mismatch", _shape_mismatch, "needs I8 [12, 3, 4, 4, 5]", 2, 1),
    ("directory", _directory, "is a directory", 2, 2),
    ("missing", lambda g, t: t / "nope.vtw", "no such file", 2, 2),
]


@pytest.mark.parametrize("command", ["inspect", "verify"])
@pytest.mark.parametrize(("make", "fragment", "inspect_exit", "verify_exit"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_clean_line(cli, good, tmp_path, command, make, fragment, inspect_exit, verify_exit):
    path = make(good, tmp_path)
    before = sorted(tmp_path.iterdir())
    r = cli([command, path])
    assert r.exit_code == (inspect_exit if command == "inspect" else verify_exit), r.stderr
    assert fragment in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr
    assert r.stdout == b"" and sorted(tmp_path.iterdir()) == before
