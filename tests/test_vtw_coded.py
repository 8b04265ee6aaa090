"""`.vtw` 2.0: entropy-coded latents round trip within half a step, predict across clips, seek from the
key clip, decode bit-exactly under any thread count or precision, and match the spec's own reader."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models import Latents
from vidtwin_cli.errors import ContainerError, UsageError
from vidtwin_cli.vtw.container import EntropyCoding, VtwFile, inspect_vtw, open_vtw, read_vtw, verify_vtw, write_vtw
from vidtwin_cli.vtw.entropy import STREAMS

from .conftest import DATA, REPO, run_cli
from .test_container import max_error, tiny_vtw

GOLDEN_2 = DATA / "vtw" / "v2.0-entropy-vfr.vtw"  # regenerate: VIDTWIN_GENERATE_EXPECTED=1 pytest tests/test_vtw_coded.py


def coded_vtw(step: float = 0.25, keyint: int = 4, frames: int = 13 * 8, drift: float = 0.1, **kw) -> VtwFile:
    """Latents that change slowly from clip to clip (like a real video's), entropy-coded with `step`."""
    base = tiny_vtw("entropy", frames=frames, step=step, keyint=keyint, **kw)
    tiles, clips = base.header.tiles_per_clip, base.header.clips
    g = torch.Generator().manual_seed(1)

    def walk(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(clips, tiles, *x.shape[1:])
        steps = drift * torch.randn(x.shape, generator=g)
        return (x[:1] + steps.cumsum(0)).reshape(clips * tiles, *x.shape[2:])

    return VtwFile(base.header, Latents(*(walk(getattr(base.latents, k)) for k in STREAMS)))


def test_round_trip_is_within_half_a_step_and_keeps_metadata(tmp_path):
    vtw = coded_vtw(vfr=True)
    nbytes = write_vtw(tmp_path / "a.vtw", vtw)
    back = read_vtw(tmp_path / "a.vtw")
    assert nbytes == (tmp_path / "a.vtw").stat().st_size
    assert back.header == vtw.header and back.header.video.pts == vtw.header.video.pts
    assert max_error(back.latents, vtw.latents) <= 0.25 / 2 + 1e-6
    report = verify_vtw(tmp_path / "a.vtw")
    assert report.valid and report.format_version == "2.0"
    assert report.sha256 == hashlib.sha256((tmp_path / "a.vtw").read_bytes()).hexdigest()


def test_much_smaller_than_fp16_and_temporal_prediction_pays(tmp_path):
    vtw = coded_vtw()
    sizes = {}
    for name, keyint in (("intra", 1), ("predicted", 8)):
        header = vtw.header.__class__(**{**vtw.header.__dict__, "keyint": keyint})
        sizes[name] = write_vtw(tmp_path / f"{name}.vtw", VtwFile(header, vtw.latents))
    fp16 = write_vtw(tmp_path / "fp16.vtw", tiny_vtw("fp16", frames=13 * 8))
    assert sizes["predicted"] < 0.6 * sizes["intra"] < 0.6 * fp16


def test_quality_sets_the_step_from_the_first_clip_and_finer_costs_bytes(tmp_path):
    from vidtwin_cli.vtw.container import vtw_writer

    vtw = coded_vtw()
    sizes, steps = [], []
    for quality in (4, 6, 8):
        h = vtw.header
        with vtw_writer(tmp_path / f"q{quality}.vtw", h.model, h.geometry, EntropyCoding(quality=quality)) as w:
            w.add(vtw.latents)
            sizes.append(w.finish(h.video))
            steps.append(w.header.step)
    assert sizes[0] < sizes[1] < sizes[2]
    assert steps[0] == pytest.approx(2 * steps[1]) and steps[1] == pytest.approx(2 * steps[2])
    with pytest.raises(UsageError, match="quality"):
        EntropyCoding(quality=0)
    with pytest.raises(UsageError, match="keyint"):
        EntropyCoding(keyint=0)


def test_random_access_reads_only_from_the_key_clip(tmp_path):
    """After open, damage clip 1: clips of the next key interval still decode, clip 2 does not."""
    vtw = coded_vtw(keyint=4)
    path = tmp_path / "a.vtw"
    write_vtw(path, vtw)
    with open_vtw(path) as reader:
        whole = [reader.symbols(k) for k in range(reader.header.clips)]
        offset = reader._clip_offsets[1]
        with open(path, "r+b") as f:  # the reader keeps reading the same file
            f.seek(offset + 20)
            byte = f.read(1)
            f.seek(offset + 20)
            f.write(bytes([byte[0] ^ 0xFF]))
        reader._last = None
        for k in (4, 6, 5, 12, 4):
            assert all(np.array_equal(reader.symbols(k)[key], whole[k][key]) for key in STREAMS)
        with pytest.raises(ContainerError, match="checksum mismatch in the 'CLIP' chunk at byte"):
            reader.symbols(2)
    with pytest.raises(ContainerError, match=f"'CLIP' chunk at byte {offset}"):
        open_vtw(path)


DIGEST = """
import contextlib, hashlib, sys, torch
torch.set_num_threads(int(sys.argv[2]))
from vidtwin_cli.vtw.container import open_vtw
sha = hashlib.sha256()
bf16 = torch.autocast("cpu", dtype=torch.bfloat16) if sys.argv[3] == "bf16" else contextlib.nullcontext()
with bf16, open_vtw(sys.argv[1]) as reader:
    for k in range(reader.header.clips):
        latents = reader.clip(k)
        for key, value in reader.symbols(k).items():
            sha.update(value.tobytes() + getattr(latents, key).numpy().tobytes())
print(sha.hexdigest())
"""


def test_decoding_is_bit_exact_across_threads_and_precision(tmp_path):
    path = tmp_path / "a.vtw"
    write_vtw(path, coded_vtw())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    digests = {subprocess.run([sys.executable, "-c", DIGEST, str(path), threads, precision], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()
               for threads, precision in (("1", "fp32"), ("1", "bf16"), ("2", "bf16"))}  # fmt: skip
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_inspect_reports_rate_and_parts(tmp_path):
    write_vtw(tmp_path / "a.vtw", coded_vtw(keyint=4))
    info = inspect_vtw(tmp_path / "a.vtw").to_json()
    assert info["format_version"] == "2.0" and info["latent_dtype"] == "entropy" and info["key_interval"] == 4
    assert info["key_clips"] == -(-info["clips"] // 4) and info["coding"] == {"step": 0.25, "keyint": 4}
    assert info["bits_per_value"] == pytest.approx(info["file_bytes"] * 8 / info["latent_values"])
    assert set(info["chunks"]) == {"HEAD", "TABL", "CLIP", "INDX"} and sum(info["chunks"].values()) + 28 == info["file_bytes"]
    assert sum(s["bytes"] for s in info["streams"].values()) == pytest.approx(info["chunks"]["CLIP"], rel=0.1)


def test_inspect_table_counts_key_clips_in_words(tmp_path):
    for keyint, words in ((1000, "(1 key clip)"), (4, "(5 key clips)")):  # 13 clips
        write_vtw(tmp_path / "a.vtw", coded_vtw(keyint=keyint))
        result = run_cli(["inspect", tmp_path / "a.vtw"])
        assert result.exit_code == 0 and words in " ".join(result.stderr.split()), result.stderr


def test_spec_example_reader_agrees(tmp_path):
    """The independent reader in docs/vtw-format.md section 17 reads what vidtwin writes."""
    doc = (REPO / "docs" / "vtw-format.md").read_text()
    code = doc.split("## 17.", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/vtw-format.md", "exec"), namespace)
    vtw = coded_vtw(vfr=True)
    write_vtw(tmp_path / "a.vtw", vtw)
    header, clips = namespace["read_vtw2_minimal"]((tmp_path / "a.vtw").read_bytes())
    assert header["clips"] == vtw.header.clips == len(clips)
    with open_vtw(tmp_path / "a.vtw") as reader:
        for k, clip in enumerate(clips):
            ours = reader.clip(k)
            assert all(np.array_equal(clip[key], getattr(ours, key).numpy()) for key in STREAMS)


def test_golden_v2_0_file_still_reads(tmp_path):
    """A file written by format 2.0: readers of every 2.x must keep reading it."""
    expected = coded_vtw(step=0.5, keyint=3, frames=30, width=50, height=20, vfr=True, sampled=True, seed=3,
                         tool_version="0.1.0", provenance={"note": "golden"})
    if os.environ.get("VIDTWIN_GENERATE_EXPECTED"):
        write_vtw(GOLDEN_2, expected)
    if not GOLDEN_2.is_file():
        pytest.fail(f"golden file missing: {GOLDEN_2} (VIDTWIN_GENERATE_EXPECTED=1 writes it)")
    back = read_vtw(GOLDEN_2)
    assert back.header == expected.header and back.header.clips > 3
    assert max_error(back.latents, expected.latents) <= 0.25 + 1e-6
    write_vtw(tmp_path / "again.vtw", expected)
    assert (tmp_path / "again.vtw").read_bytes() == GOLDEN_2.read_bytes()  # the writer still produces 2.0 byte for byte


def test_a_step_too_fine_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="step"):
        write_vtw(tmp_path / "a.vtw", coded_vtw(step=1e-6))
    assert not (tmp_path / "a.vtw").exists()


def test_encode_flags_choose_the_coding(cli, tmp_path, sample_video):
    def encode(name: str, *flags: str) -> dict:
        out = cli(["encode", sample_video, "-o", tmp_path / name, "--model", "tiny", "--json", *flags])
        assert out.exit_code == 0, out.stderr
        return {**json.loads(out.stdout), **inspect_vtw(tmp_path / name).to_json()}

    default, fine, raw = encode("d.vtw"), encode("f.vtw", "--quality", "10", "--keyint", "1"), encode("r.vtw", "--dtype", "fp16")
    assert (default["format_version"], default["keyint"], default["latent_dtype"]) == ("2.0", 8, "entropy")
    assert fine["key_interval"] == 1 and fine["step"] < default["step"] and fine["bytes"] > default["bytes"]
    assert raw["format_version"] == "1.0" and raw["latent_dtype"] == "fp16" and raw["bytes"] > default["bytes"]
    assert encode("s.vtw", "--step", "0.125")["coding"]["step"] == 0.125
    for flags, fragment in ((["--quality", "0"], "--quality"), (["--step", "-1"], "--step"), (["--keyint", "0"], "--keyint")):
        out = cli(["encode", sample_video, "-o", tmp_path / "bad.vtw", "--model", "tiny", *flags])
        assert out.exit_code == 2 and fragment in out.stderr and not (tmp_path / "bad.vtw").exists()
