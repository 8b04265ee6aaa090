"""encode / decode / swap through the real CLI entry point, on real video files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import save_file

from vidtwin_cli.vtw.container import read_vtw
from vidtwin_cli.codec.weights import save_model

from .conftest import write_test_video


def probe(path: Path) -> tuple[int, int, int, Fraction, list[float]]:
    """(frames, width, height, average rate, frame times in s) as any player would see them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(video=0))
        return len(frames), frames[0].width, frames[0].height, s.average_rate, [float(f.pts * f.time_base) for f in frames]


def encode(cli, src, dst, *extra):
    extra = extra if "--model" in extra else ("--model", "tiny", *extra)
    result = cli(["encode", src, "-o", dst, "--json", *extra])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def decode(cli, src, dst, *extra):
    result = cli(["decode", src, "-o", dst, "--json", *extra])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("width", "height", "frames"),
    [(48, 40, 17), (33, 17, 7), (40, 32, 1)],
    ids=["padded-tiles-17-frames", "odd-size", "one-frame"],
)
def test_round_trip_keeps_size_count_and_rate(cli, tmp_path, width, height, frames):
    src = write_test_video(tmp_path / "in.mp4", width, height, frames, fps=Fraction(30000, 1001))
    info = encode(cli, src, tmp_path / "a.vtw")
    assert info["frames"] == frames and info["bytes"] == (tmp_path / "a.vtw").stat().st_size
    decode(cli, tmp_path / "a.vtw", tmp_path / "out.mp4")
    n, w, h, rate, _ = probe(tmp_path / "out.mp4")
    assert (n, w, h, rate) == (frames, width, height, Fraction(30000, 1001))


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [
    ("mpeg4.avi", "mpeg4", "yuv420p"),
    ("vp9.webm", "libvpx-vp9", "yuv420p"),
    ("mjpeg.avi", "mjpeg", "yuvj420p"),  # full-range JPEG levels
    ("hevc-10bit.mp4", "libx265", "yuv420p10le"),
    ("gray.mkv", "ffv1", "gray"),
    ("rgba.mov", "png", "rgba"),
    ("rgb48.mov", "png", "rgb48be"),
    ("prores.mov", "prores", "yuv422p10le"),
], ids=lambda v: v if "." in str(v) else "")
def test_sources_of_other_codecs_and_pixel_formats_round_trip(cli, tmp_path, name, codec, pix_fmt):
    """Real files in codecs and pixel formats the sample clips do not have: 10-bit, gray, alpha, 4:2:2."""
    src = write_test_video(tmp_path / name, 128, 96, 9, codec=codec, pix_fmt=pix_fmt)  # x265 crashes below ~56 px wide
    encode(cli, src, tmp_path / "a.vtw")
    decode(cli, tmp_path / "a.vtw", tmp_path / "out.mp4")
    n, w, h, rate, _ = probe(tmp_path / "out.mp4")
    assert (n, w, h, rate) == (9, 128, 96, 25)


def test_variable_frame_rate_timestamps_survive(cli, tmp_path):
    pts = [0, 3, 4, 9, 10, 11, 20, 21]  # irregular, in 1/30 s ticks
    src = write_test_video(tmp_path / "vfr.mkv", 32, 32, len(pts), fps=Fraction(30), pts=pts, time_base=Fraction(1, 30))
    encode(cli, src, tmp_path / "vfr.vtw")
    decode(cli, tmp_path / "vfr.vtw", tmp_path / "vfr.mkv.out.mkv")
    assert probe(tmp_path / "vfr.mkv.out.mkv")[4] == pytest.approx([p / 30 for p in pts], abs=1e-3)


def test_real_clip_round_trip(cli, tmp_path, media_dir):
    """A real H.264 clip at 29.97 fps, tiled (6×5 tiles of 32 px, padded), decoded to a playable mp4."""
    info = encode(cli, media_dir / "carphone_pristine.mp4", tmp_path / "c.vtw", "--dtype", "int8")
    assert info["frames"] == 120 and info["tiles_per_clip"] == 30
    decode(cli, tmp_path / "c.vtw", tmp_path / "c.mp4")
    n, w, h, rate, _ = probe(tmp_path / "c.mp4")
    assert (n, w, h, rate) == (120, 176, 144, Fraction(30000, 1001))


@pytest.mark.parametrize(("fit", "size"), [("resize", (720, 405)), ("crop", (32, 32))])
def test_fit_modes_on_mpeg2(cli, tmp_path, media_dir, fit, size):
    info = encode(cli, media_dir / "cityCC0.mpg", tmp_path / "c.vtw", "--fit", fit)
    assert info["tiles_per_clip"] == 1
    decode(cli, tmp_path / "c.vtw", tmp_path / "c.mp4")
    n, w, h, _, _ = probe(tmp_path / "c.mp4")
    assert n == info["frames"] and (w, h) == size


def test_pipes_video_in_vtw_through_video_out(cli, tmp_path, sample_video):
    nut = tmp_path / "in.nut"
    with av.open(str(sample_video)) as src, av.open(str(nut), "w") as dst:
        stream = dst.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for frame in src.decode(video=0):
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode())
    enc = cli(["encode", "-", "--format", "nut", "-o", "-", "--model", "tiny", "-q"], input=nut.read_bytes())
    assert enc.exit_code == 0, enc.stderr
    (tmp_path / "piped.vtw").write_bytes(enc.stdout)  # the whole .vtw, and nothing else, went to stdout
    assert read_vtw(tmp_path / "piped.vtw").header.video.frame_count == 17
    dec = cli(["decode", "-", "-o", "-", "--format", "matroska", "-q"], input=enc.stdout)
    assert dec.exit_code == 0, dec.stderr
    (tmp_path / "out.mkv").write_bytes(dec.stdout)
    assert probe(tmp_path / "out.mkv")[:3] == (17, 48, 40)


def test_only_and_sampling(cli, tmp_path, sample_video):
    encode(cli, sample_video, tmp_path / "s1.vtw", "--sample", "--seed", "3")
    encode(cli, sample_video, tmp_path / "s2.vtw", "--sample", "--seed", "3")
    encode(cli, sample_video, tmp_path / "m.vtw")
    s1, s2, m = (read_vtw(tmp_path / f"{n}.vtw").latents.structure for n in ("s1", "s2", "m"))
    assert (s1 == s2).all() and not (s1 == m).all()
    for part in ("structure", "dynamics"):
        decode(cli, tmp_path / "m.vtw", tmp_path / f"{part}.mp4", "--only", part)
        assert probe(tmp_path / f"{part}.mp4")[:3] == (17, 48, 40)


def test_swap_follows_b_and_holds_last_structure(cli, tmp_path):
    a = write_test_video(tmp_path / "a.mp4", 48, 40, 5)  # 1 clip
    b = write_test_video(tmp_path / "b.mp4", 48, 40, 20)  # 4 clips
    encode(cli, a, tmp_path / "a.vtw", "--step", "0.05")  # one step: the swapped .vtw keeps B's, exactly
    encode(cli, b, tmp_path / "b.vtw", "--step", "0.05")
    result = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.mp4", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["clips_swapped"] == 4
    assert probe(tmp_path / "ab.mp4")[:3] == (20, 48, 40)
    # As latents: structure rows come from A's only clip, dynamics rows from B.
    out = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.vtw"])
    assert out.exit_code == 0, out.stderr
    va, vb, vab = (read_vtw(tmp_path / f"{n}.vtw") for n in ("a", "b", "ab"))
    tiles = va.header.tiles_per_clip
    assert (vab.latents.structure[-tiles:] == va.latents.structure[:tiles]).all()
    assert (vab.latents.dynamics_x == vb.latents.dynamics_x).all()


def write_noise_video(path: Path, width: int, height: int, frames: int) -> Path:
    """Content unlike `write_test_video`'s, so that swapping structure visibly changes the output."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for _ in range(frames):
            c.mux(stream.encode(av.VideoFrame.from_ndarray(rng.integers(0, 256, (height, width, 3), np.uint8), "rgb24")))
        c.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def active_model(tmp_path_factory, official_fixture) -> Path:
    """The official tiny weights (every path active, unlike a fresh init whose temporal attention is off)."""
    from models import PRESETS
    from vidtwin_cli.codec.weights import build_model, save_model

    from .models.test_conformance import official_weights
    from models.checkpoint import from_official

    path = tmp_path_factory.mktemp("model") / "official-tiny.safetensors"
    save_model(path, build_model(PRESETS["tiny"], from_official(official_weights(official_fixture), PRESETS["tiny"])))
    return path


def test_swap_range_changes_only_that_span(cli, tmp_path, active_model):
    a = write_noise_video(tmp_path / "a.mp4", 32, 32, 24)
    b = write_test_video(tmp_path / "b.mp4", 32, 32, 24, fps=Fraction(12))
    encode(cli, a, tmp_path / "a.vtw", "--model", active_model)
    encode(cli, b, tmp_path / "b.vtw", "--model", active_model)
    # lossless: exact frame comparison; a file's recorded model path is never loaded on its say, so --model
    decode(cli, tmp_path / "b.vtw", tmp_path / "b.mkv", "--codec", "ffv1", "--model", active_model)
    result = cli(["swap", tmp_path / "a.vtw", tmp_path / "b.vtw", "-o", tmp_path / "ab.mkv", "--range", "0.5:1.0",
                  "--codec", "ffv1", "--model", active_model])
    assert result.exit_code == 0, result.stderr

    def frames(p):
        with av.open(str(p)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(int)

    diff = np.abs(frames(tmp_path / "ab.mkv") - frames(tmp_path / "b.mkv")).reshape(24, -1).max(1)
    changed = diff > 0
    assert changed[6:12].all() and not changed[:6].any() and not changed[12:].any()


def test_decode_refuses_other_weights_unless_forced(cli, tmp_path, sample_video, tiny_model):
    encode(cli, sample_video, tmp_path / "a.vtw")
    other = tmp_path / "other.safetensors"
    model = type(tiny_model)(tiny_model.config)  # same sizes, other (fresh random) weights
    save_model(other, model)
    refused = cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "x.mp4", "--model", other])
    assert refused.exit_code == 2 and "--force" in refused.stderr and not (tmp_path / "x.mp4").exists()
    forced = cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "x.mp4", "--model", other, "--force"])
    assert forced.exit_code == 0 and "warning:" in forced.stderr


def test_batch_encode_continues_past_a_bad_file(cli, tmp_path):
    good = [write_test_video(tmp_path / f"g{i}.mp4", 32, 32, 3) for i in range(2)]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 300)
    out = tmp_path / "out"
    out.mkdir()
    result = cli(["encode", good[0], bad, good[1], "--out-dir", out, "--model", "tiny", "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert [Path(r["output"]).name for r in summary["results"]] == ["g0.vtw", "g1.vtw"]
    assert summary["failed"][0]["input"].endswith("bad.mp4") and "bad.mp4" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["g0.vtw", "g1.vtw"]


# ---- bad input: one line on stderr, exit 2, no output file ------------------------------------


def _vtw(tmp_path: Path, sample_video: Path) -> bytes:
    from .conftest import run_cli

    path = tmp_path / "ok.vtw"
    assert run_cli(["encode", sample_video, "-o", path, "--model", "tiny", "-q"]).exit_code == 0
    return path.read_bytes()


def _future_version(data: bytes) -> bytes:
    assert data.startswith(b"\x89VTW\r\n\x1a\n")  # encode writes .vtw 2.0
    return data[:8] + (9).to_bytes(2, "little") + data[10:]


CASES = {
    "missing-file": (lambda d, v: ["encode", d / "nope.mp4", "-o", d / "out.vtw"], "nope.mp4"),
    "directory": (lambda d, v: ["encode", d, "-o", d / "out.vtw"], "directory"),
    "non-video": (lambda d, v: ["encode", _write(d / "t.mp4", b"hello " * 400), "-o", d / "out.vtw"], "t.mp4"),
    "zero-frames": (lambda d, v: ["encode", write_test_video(d / "z.mp4", frames=0), "-o", d / "out.vtw"], "z.mp4"),
    "truncated-mp4": (lambda d, v: ["encode", _write(d / "tr.mp4", v.read_bytes()[: len(v.read_bytes()) // 2]), "-o", d / "out.vtw"], "tr.mp4"),
    "truncated-vtw": (lambda d, v: ["decode", _write(d / "t.vtw", _vtw(d, v)[:-100]), "-o", d / "out.mp4"], "t.vtw"),
    "bitflip-vtw": (lambda d, v: ["decode", _write(d / "f.vtw", _flip(_vtw(d, v))), "-o", d / "out.mp4"], "f.vtw"),
    "future-version": (lambda d, v: ["decode", _write(d / "fv.vtw", _future_version(_vtw(d, v))), "-o", d / "out.mp4"], "version"),
    "plain-safetensors": (lambda d, v: ["decode", _plain(d / "p.vtw"), "-o", d / "out.mp4"], "p.vtw"),
    "unknown-model": (lambda d, v: ["encode", v, "-o", d / "out.vtw", "--model", "nosuch"], "unknown model"),
    "range-outside": (lambda d, v: ["swap", _write(d / "a.vtw", _vtw(d, v)), d / "a.vtw", "-o", d / "out.mp4", "--range", "5:9"], "--range"),
    "missing-out-dir": (lambda d, v: ["encode", v, "-o", d / "no" / "out.vtw"], "does not exist"),
    "output-is-input": (lambda d, v: ["decode", _write(d / "out.mp4", _vtw(d, v)), "-o", d / "out.mp4"], "overwrite"),
    "bad-flag": (lambda d, v: ["encode", v, "-o", d / "out.vtw", "--fit", "stretch"], "--fit"),
    "fp16-on-cpu": (lambda d, v: ["encode", v, "-o", d / "out.vtw", "--precision", "fp16"], "fp16"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _flip(data: bytes) -> bytes:
    b = bytearray(data)
    b[-50] ^= 0x40
    return bytes(b)


def _plain(path: Path) -> Path:
    import torch

    save_file({"x": torch.zeros(3)}, str(path))
    return path


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input(cli, tmp_path, sample_video, case):
    make, fragment = CASES[case]
    args = make(tmp_path, sample_video)
    before = {p for p in tmp_path.rglob("*")}
    result = cli(args)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert fragment in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    assert not created, created  # no output, no temp file left behind


@pytest.mark.slow
def test_compile_changes_speed_not_results(cli, sample_video, tmp_path):
    """`--compile` runs the same model through torch.compile: same latents to fp32 rounding, same video."""
    from torch._dynamo.utils import counters  # dynamo's own tally of the frames it compiled

    encode(cli, sample_video, tmp_path / "eager.vtw", "--dtype", "fp32", "--precision", "fp32")
    before = counters["frames"]["ok"]
    encode(cli, sample_video, tmp_path / "compiled.vtw", "--dtype", "fp32", "--precision", "fp32", "--compile")
    assert counters["frames"]["ok"] > before  # the flag really reached torch.compile
    eager, compiled = read_vtw(tmp_path / "eager.vtw").latents, read_vtw(tmp_path / "compiled.vtw").latents
    for name in ("structure", "dynamics_x", "dynamics_y"):
        assert (getattr(eager, name) - getattr(compiled, name)).abs().max() < 1e-4
    decode(cli, tmp_path / "eager.vtw", tmp_path / "eager.mkv", "--codec", "ffv1", "--precision", "fp32")
    decode(cli, tmp_path / "eager.vtw", tmp_path / "compiled.mkv", "--codec", "ffv1", "--precision", "fp32", "--compile")
    with av.open(str(tmp_path / "eager.mkv")) as a, av.open(str(tmp_path / "compiled.mkv")) as b:
        pairs = zip(a.decode(video=0), b.decode(video=0), strict=True)
        worst = max(np.abs(x.to_ndarray().astype(int) - y.to_ndarray()).max() for x, y in pairs)
    assert worst <= 1  # 8-bit rounding of float differences at the 1e-6 level
