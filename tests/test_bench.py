"""`vidtwin bench`: the FLOP count, the x264 size search and the JSON schema on tiny runs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models import PRESETS, VidTwinAE
from vidtwin_cli.bench.baseline import available_codecs, decode_stream, encode_at_bytes, unavailable
from vidtwin_cli.bench.flops import model_flops
from vidtwin_cli.codec.runtime import can_pack_linears

ODD = dataclasses.replace(PRESETS["tiny"], image_size=28, structure_blocks=2, dynamics_blocks=2)  # 7×7 grid: crop path


@pytest.mark.parametrize("cfg", [PRESETS["tiny"], ODD, PRESETS["release"]], ids=["tiny", "odd-grid", "release"])
def test_flop_count_matches_torch_flop_counter(cfg):
    with torch.device("meta"):  # shapes only: the release model costs nothing here
        model = VidTwinAE(cfg).eval()
        x = torch.empty(1, *cfg.clip_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as enc:
        latents = model.encode(x)
    with torch.no_grad(), FlopCounterMode(display=False) as dec:
        model.decode(latents)
    flops = model_flops(cfg)
    assert (flops.encode_total, flops.decode_total) == (enc.get_total_flops(), dec.get_total_flops())


def test_release_is_about_two_teraflop_per_encode_decode():
    assert model_flops(PRESETS["release"]).total == pytest.approx(2.0e12, rel=0.01)


def test_x264_matches_a_byte_target_within_five_percent(sample_video):
    first, _ = encode_at_bytes(sample_video, 10_000, "libx264")  # any size this clip can reach
    target = int(first.bytes * 0.8)
    stream, search = encode_at_bytes(sample_video, target, "libx264")
    assert search["matched"] and abs(stream.bytes / target - 1) <= 0.05
    assert search["bytes"] == stream.bytes and search["encodes"] >= 1
    assert sum(1 for _ in decode_stream(stream)) == 17
    assert stream.data[4:8] == b"ftyp" and stream.bytes == len(stream.data)  # a whole .mp4 file is counted


def test_x264_below_its_crf_51_size_switches_to_bitrate_search(make_video, tmp_path):
    from vidtwin_cli.bench.baseline import encode_frames
    from vidtwin_cli.video.io import VideoReader

    src = make_video(tmp_path / "clip.mp4", 192, 160, 30)
    with VideoReader(src) as video:
        floor = encode_frames(video, video.fps, "libx264", crf=51.0).bytes
    target = int(floor * 0.85)  # CRF cannot get below its CRF-51 size; x264's average-bitrate mode can
    stream, search = encode_at_bytes(src, target, "libx264")
    assert search["mode"] == "abr" and search["crf"] is None and search["bit_rate"] > 0
    assert search["matched"] and abs(stream.bytes / target - 1) <= 0.05


SPEED_KEYS = {"precision", "clips", "encode_s", "decode_s", "total_s", "warmup_s", "compiled", "packed_linears", "seconds_per_clip",
              "frames_per_s", "gflop", "gflops_per_s", "matmul_peak_gflops_per_s", "ratio_to_peak",
              "matmul_sustained_gflops_per_s", "ratio_to_sustained", "peak_rss_mib", "peak_cuda_mib", "vs_fp32"}
HEADER_KEYS = {"schema", "mode", "model", "environment", "load_seconds", "flops_per_clip", "latent_values_per_clip",
               "compression_rate", "latent_bytes_per_clip"}
QUALITY_KEYS = {"frames", "psnr", "ssim", "lpips", "flicker_rmse", "clip_seam", "tile_seam", "per_clip"}


def test_synthetic_bench_json(cli):
    r = cli(["bench", "--synthetic", "--preset", "tiny", "--precision", "fp32", "--precision", "bf16",
             "--repeat", "2", "--warmup", "0", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.text)
    assert set(report) == HEADER_KEYS | {"speed"} and report["mode"] == "synthetic"
    assert report["flops_per_clip"]["total"] == model_flops(PRESETS["tiny"]).total
    fp32, bf16 = report["speed"]
    assert set(fp32) == set(bf16) == SPEED_KEYS
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert len(fp32["total_s"]["runs"]) == 2 and fp32["total_s"]["min"] <= fp32["total_s"]["median"]
    assert fp32["vs_fp32"] is None and bf16["vs_fp32"]["psnr_db"] > 20
    assert 0 < fp32["ratio_to_peak"]["best"] and fp32["peak_rss_mib"] > 0
    assert len(fp32["matmul_sustained_gflops_per_s"]) == 2 and min(fp32["matmul_sustained_gflops_per_s"]) > 0
    assert fp32["ratio_to_sustained"]["best"] >= fp32["ratio_to_sustained"]["median"] > 0
    assert fp32["packed_linears"] == can_pack_linears(torch.device("cpu"), torch.float32) and not bf16["packed_linears"]
    assert set(report["latent_bytes_per_clip"]) == {"fp16", "bf16", "fp32", "int8"}


@pytest.mark.slow
def test_video_bench_json_and_plot(cli, sample_video, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    r = cli(["bench", sample_video, "--model", "tiny", "--lpips", "off", "--baseline", "libx264", "--rd",
             "--plot", png, "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.text)
    assert set(report) == HEADER_KEYS | {"inputs"} and report["mode"] == "video"
    (video,) = report["inputs"]
    assert video["video"]["frames"] == 17 and video["video"]["tiles_per_clip"] == 4
    assert set(video["rate"]) == {"entropy", "fp16", "bf16", "fp32", "int8"} and video["latent_dtype"] == "entropy"
    rate = {k: v["bytes"] for k, v in video["rate"].items()}
    assert rate["fp32"] > rate["fp16"] > rate["int8"] > rate["entropy"]
    (run,) = video["runs"]
    assert set(run["quality"]) == QUALITY_KEYS and len(run["quality"]["psnr"]["per_frame"]) == 17
    assert run["quality"]["tile_seam"] is not None and run["quality"]["clip_seam"] is not None
    (x264,) = video["baselines"]
    assert x264["codec"] == "libx264" and x264["target_bytes"] == video["rate"]["entropy"]["bytes"]
    assert set(x264["quality"]) == QUALITY_KEYS
    bicubic = video["resample"]  # the model's value count (3 clips of 6 frames × 4 tiles) spent on resampling
    assert bicubic["model_values"] == 3 * 4 * PRESETS["tiny"].latent_values
    assert bicubic["values"] == max(t["values"] for t in bicubic["tried"] if t["psnr"] == bicubic["quality"]["psnr"]["pooled"])
    assert all(t["values"] <= bicubic["model_values"] for t in bicubic["tried"]) and len(bicubic["tried"]) == 3
    assert set(bicubic["quality"]) == QUALITY_KEYS
    assert [p["latent_dtype"] for p in video["rd"]["vidtwin raw"]] == ["fp16", "bf16", "fp32", "int8"]
    entropy = video["rd"]["vidtwin"]
    assert [p["quality"] for p in entropy] == [3, 5, 7, 9, 11] and entropy[0]["bytes"] < entropy[-1]["bytes"]
    x264 = {"libx264 medium", "libx264 veryslow"}
    assert set(video["bd_rate"]) == x264 and set(video["rd"]) == {"vidtwin", "vidtwin raw"} | x264
    assert set(video["bd_rate"]["libx264 medium"]) == {"vidtwin", "vidtwin raw", "libx264 veryslow"}
    assert set(video["bd_rate"]["libx264 medium"]["vidtwin"]) == {"psnr", "lpips"}
    assert all(len(video["rd"][name]) >= 5 and {p["preset"] for p in video["rd"][name]} == {name.split()[1]} for name in x264)
    entropy_rate = video["rate"]["entropy"]
    assert entropy_rate["write_s"] > 0 and entropy_rate["read_s"] > 0
    assert 0 < video["coding_share"][run["precision"]]["entropy"] < 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trimmed_bench_reports_the_users_file_and_the_part(cli, sample_video):
    """The part is benchmarked from a copy in the work folder, but the report names the input as given."""
    r = cli(["bench", sample_video, "--model", "tiny", "--lpips", "off", "--baseline", "libx264",
             "--start", "0.08", "--frames", "9", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (video,) = json.loads(r.text)["inputs"]
    assert video["input"] == str(sample_video)
    assert video["video"]["frames"] == 9 and len(video["runs"][0]["quality"]["psnr"]["per_frame"]) == 9
    assert video["video"]["duration_s"] == pytest.approx(9 / 25)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--synthetic", "clip.mp4"], "or --synthetic"),
        ([], "or --synthetic"),
        (["--synthetic", "--precision", "fp8"], "fp8"),
        (["--synthetic", "--preset", "tiny", "--model", "tiny"], "--preset"),
        (["{video}", "--fit", "crop", "--lpips", "off"], "source size"),
        (["{video}", "--baseline", "libx266"], "libx266"),
        (["{video}", "--lpips", "squeeze"], "--lpips"),
        (["missing.mp4", "--lpips", "off"], "no such file"),
    ],
    ids=["inputs-and-synthetic", "nothing", "bad-precision", "preset-and-model", "crop", "bad-baseline", "bad-lpips",
         "missing-input"],
)  # fmt: skip
def test_bad_flags(cli, sample_video, args, message):
    r = cli(["bench", *[str(sample_video) if a == "{video}" else a for a in args]])
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and r.stdout == b""


def test_available_codecs_lists_x264():
    assert "libx264" in available_codecs()


def test_x265_is_not_offered_for_frames_it_would_crash_on():
    """x265 corrupts its heap on some frames under 64 px wide; the bench leaves it out there, not the process."""
    assert "libx265" not in available_codecs(40) and "64 px" in unavailable("libx265", 40)
    assert ("libx265" in available_codecs(64)) == ("libx265" in available_codecs())


def test_a_bench_without_a_baseline_encoder_says_why_in_its_report(cli, sample_video):
    """The sample is 48 px wide: x265 is left out, and the report and table say so instead of failing."""
    r = cli(["bench", sample_video, "--model", "tiny", "--lpips", "off", "--json"])
    assert r.exit_code == 0, r.stderr
    (video,) = json.loads(r.text)["inputs"]
    assert [b["codec"] for b in video["baselines"]] == ["libx264"]
    assert "64 px" in video["skipped_baselines"]["libx265"]
    assert "libx265 left out" in r.stderr


def test_bd_rate_of_a_curve_at_half_the_bytes_is_minus_50_percent():
    from vidtwin_cli.bench.bdrate import bd_rate

    reference = [(r, 30 + 10 * math.log10(r / 100)) for r in (100, 200, 400, 800, 1600)]
    assert bd_rate(reference, [(r / 2, q) for r, q in reference]) == pytest.approx(-50)
    assert bd_rate(reference, [(r * 1.1, q) for r, q in reference]) == pytest.approx(10)
    assert bd_rate(reference, [(r, q + 100) for r, q in reference]) is None  # no common quality range
    assert bd_rate(reference, reference[:3]) is None  # a cubic needs four points


def test_tables_are_not_cut_to_80_columns_in_a_log(cli):
    r = cli(["bench", "--synthetic", "--preset", "tiny", "--repeat", "1", "--warmup", "0"])
    assert r.exit_code == 0, r.stderr
    header = next(line for line in r.stderr.splitlines() if "precision" in line)
    assert "of sustained" in header and "RSS MiB" in header and "…" not in r.stderr
