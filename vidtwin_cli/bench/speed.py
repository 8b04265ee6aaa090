"""Speed and memory of the model: timed encode/decode per precision, a matmul probe, peak memory.

Everything here is measured in one process with the precisions interleaved repetition by
repetition, so a noisy machine slows every variant alike; min and median are both reported.
Achieved GFLOP/s use the analytic count of `flops.py` and are set against a matmul probe of the
same dtype run in the same process, so ratios compare across machines (docs/bench.md).
"""

from __future__ import annotations

import copy
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from models import Latents, VidTwinAE, VidTwinConfig

from vidtwin_cli.callbacks import Progress, Warn
from vidtwin_cli.vtw.bytes import ST_DTYPES
from vidtwin_cli.vtw.header import LATENT_DTYPES, tensor_layout
from vidtwin_cli.bench.flops import model_flops
from vidtwin_cli.bench.metrics import json_float, json_ready, psnr_from_mse
from vidtwin_cli.codec.model_info import ParameterCounts
from vidtwin_cli.codec.runtime import PRECISIONS, ModelRunner, PackedLinear, cpu_has_native_bf16, resolve_precision
from vidtwin_cli.codec.weights import LoadedModel, resolve_model

MIB = 1 << 20
PROBE_REPEAT = 5
SUSTAIN_MAX_S = 2.0  # longest sustained matmul probe before each timed run
CLEAR_REFS = "/proc/self/clear_refs"
PROC_STATUS = "/proc/self/status"
SCHEMA = "vidtwin.bench/1"


@dataclass(frozen=True)
class Timing:
    """Seconds of repeated runs of one thing."""

    runs: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_dict(self) -> dict:
        return {"min": self.min, "median": self.median, "runs": list(self.runs)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe(dtype: torch.dtype, device: torch.device, m: int, k: int, n: int, packed: bool) -> tuple[Callable[[], None], int]:
    """A timed unit of the probe and how many products it runs: an (m, k) input through an (n, k)
    Linear in `dtype` on `device`, by the kernel the model's Linears run: `PackedLinear` where the
    runner packs them, else `F.linear` (on a CPU without native bf16 a plain `torch.mm` takes a far
    slower path than `linear` and would misstate the peak)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(m, k, generator=gen).to(device, dtype)
    layer = nn.Linear(k, n, bias=False)
    nn.init.normal_(layer.weight, generator=gen)
    layer = layer.to(device, dtype)
    layer = PackedLinear(layer, m) if packed else layer
    inner = 1 if device.type == "cpu" else 20  # GPU products take microseconds: time a burst

    @torch.inference_mode()
    def burst() -> None:
        for _ in range(inner):
            layer(x)
        _sync(device)

    return burst, inner


def matmul_peak(dtype: torch.dtype, device: torch.device, m: int, k: int, n: int, packed: bool = False,
                repeat: int = PROBE_REPEAT) -> float:  # fmt: skip
    """Best GFLOP/s of one product (see `_probe`), after one warm-up."""
    burst, products = _probe(dtype, device, m, k, n, packed)
    burst()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        burst()
        best = min(best, (time.perf_counter() - start) / products)
    return 2 * m * k * n / best / 1e9


def matmul_sustained(dtype: torch.dtype, device: torch.device, m: int, k: int, n: int, seconds: float,
                     packed: bool = False) -> float:  # fmt: skip
    """GFLOP/s of the `matmul_peak` product run back to back for `seconds` (at least 3 products).

    On a shared machine one product can land in a quiet moment that a model run, seconds long,
    cannot; this is the rate the machine keeps up at the time of the run it is set against.
    """
    burst, products = _probe(dtype, device, m, k, n, packed)
    burst()
    start, count = time.perf_counter(), 0
    while count < 3 * products or time.perf_counter() - start < seconds:
        burst()
        count += products
    return 2 * m * k * n * count / (time.perf_counter() - start) / 1e9


class PeakMemory:
    """Peak resident memory (and peak CUDA memory) since the last `reset`.

    On Linux the resident high-water mark (VmHWM) is reset through /proc/self/clear_refs; where that
    is not possible the process-lifetime peak is reported and `rss_scope` says so.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = os.path.exists(CLEAR_REFS) and os.access(CLEAR_REFS, os.W_OK)

    @property
    def rss_scope(self) -> str:
        return "since reset" if self.resettable else "process lifetime"

    def reset(self) -> None:
        if self.resettable:
            with open(CLEAR_REFS, "w") as f:
                f.write("5")  # 5: reset the peak RSS to the current RSS (proc(5))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    @staticmethod
    def current_rss_mib() -> float | None:
        return _status_kib("VmRSS") / 1024 if os.path.exists(PROC_STATUS) else None

    def peak_rss_mib(self) -> float:
        if os.path.exists(PROC_STATUS):
            return _status_kib("VmHWM") / 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux

    def peak_cuda_mib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / MIB if self.device.type == "cuda" else None


def _status_kib(key: str) -> int:
    with open(PROC_STATUS) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} missing from {PROC_STATUS}")


def environment(device: torch.device) -> dict:
    """What the figures were measured on."""
    import av

    env = {
        "torch": torch.__version__,
        "pyav": av.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two videos in [-1, 1] (peak-to-peak 2, i.e. the 8-bit PSNR without rounding)."""
    return psnr_from_mse(float((a.double() - b.double()).pow(2).mean()), peak=2.0)


def _latent_diff(a: Latents, b: Latents) -> float:
    return max(float((x - y).abs().max()) for x, y in zip((a.structure, a.dynamics_x, a.dynamics_y),
                                                           (b.structure, b.dynamics_x, b.dynamics_y)))


@dataclass
class _Runs:
    """What the timed loop records for one precision."""

    warmup: list[float] = field(default_factory=list)
    encode: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)
    sustained: list[float] = field(default_factory=list)  # matmul GFLOP/s just before each timed run
    last_s: float = SUSTAIN_MAX_S  # seconds of the latest encode+decode
    peak_rss_mib: float = 0.0
    peak_cuda_mib: float = 0.0
    first: tuple[Latents, torch.Tensor] | None = None  # latents and video of the first run


def speed_bench(
    model: VidTwinAE,
    device: torch.device,
    precisions: Sequence[str],
    clips: torch.Tensor,
    warmup: int = 1,
    repeat: int = 3,
    batch_size: int = 1,
    progress: Progress | None = None,
    warn: Warn | None = None,
    compile: bool = False,
) -> list[dict]:
    """Time encode and decode of `clips` (N, C, T, H, W) in [-1, 1] in each precision, interleaved.

    Each precision runs on its own copy of `model` (weights cast once); `model` itself is used by
    the last one. `progress` advances by one per encode+decode (warm-up included). Reports low
    precisions against the first fp32 output when fp32 is among `precisions`. With `compile` the
    ST blocks are compiled and the first warm-up run includes the compile time (`warmup_s`).
    """
    if warmup < 0 or repeat < 1:
        raise ValueError("warmup must be >= 0 and repeat >= 1")
    dtypes = [resolve_precision(p, device) for p in precisions]
    runners = [
        ModelRunner(model if i == len(dtypes) - 1 else copy.deepcopy(model), device, dtype, batch_size, warn, compile)
        for i, dtype in enumerate(dtypes)
    ]
    cfg = model.config

    product = (cfg.frames * cfg.grid**2, cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio))  # the MLP's (T·h·w, c) @ (c, 4c)
    peaks = [matmul_peak(dtype, device, *product, r.packed) for dtype, r in zip(dtypes, runners)]  # before and after the runs
    memory = PeakMemory(device)
    runs = [_Runs() for _ in runners]
    for rep in range(warmup + repeat):
        for dtype, runner, record in zip(dtypes, runners, runs):
            if rep >= warmup:  # right before the run, as long as the last one (up to SUSTAIN_MAX_S)
                seconds = min(record.last_s, SUSTAIN_MAX_S)
                record.sustained.append(matmul_sustained(dtype, device, *product, seconds, runner.packed))
            memory.reset()
            _sync(device)
            t0 = time.perf_counter()
            latents = runner.encode(clips)
            t1 = time.perf_counter()
            video = runner.decode(latents)
            t2 = time.perf_counter()
            record.last_s = t2 - t0
            if rep < warmup:
                record.warmup.append(t2 - t0)
            else:
                record.encode.append(t1 - t0)
                record.decode.append(t2 - t1)
                record.peak_rss_mib = max(record.peak_rss_mib, memory.peak_rss_mib())
                record.peak_cuda_mib = max(record.peak_cuda_mib, memory.peak_cuda_mib() or 0.0)
            record.first = record.first or (latents, video)
            if progress:
                progress(1)
    peaks = [max(before, matmul_peak(dtype, device, *product, r.packed)) for before, dtype, r in zip(peaks, dtypes, runners)]
    fp32 = next((r.first for p, r in zip(precisions, runs) if p == "fp32"), None)
    flops = model_flops(cfg).total * clips.shape[0]
    return [
        _speed_entry(name, record, peak, flops, clips.shape[0], cfg.frames, compile, r.packed, device,
                     None if name == "fp32" else fp32)  # fmt: skip
        for name, record, peak, r in zip(precisions, runs, peaks, runners)
    ]


def _speed_entry(name: str, runs: _Runs, peak: float, flops: int, clips: int, frames_per_clip: int, compiled: bool,
                 packed: bool, device: torch.device, fp32: tuple[Latents, torch.Tensor] | None) -> dict:  # fmt: skip
    e, d = Timing(tuple(runs.encode)), Timing(tuple(runs.decode))
    total = Timing(tuple(a + b for a, b in zip(runs.encode, runs.decode)))
    frames = clips * frames_per_clip
    per_run = [flops / t / 1e9 / rate for t, rate in zip(total.runs, runs.sustained)]
    latents, video = runs.first
    return {
        "precision": name,
        "clips": clips,
        "encode_s": e.to_dict(),
        "decode_s": d.to_dict(),
        "total_s": total.to_dict(),
        "warmup_s": runs.warmup,
        "compiled": compiled,
        "packed_linears": packed,
        "seconds_per_clip": {"encode": e.median / clips, "decode": d.median / clips, "total": total.median / clips},
        "frames_per_s": {"encode": frames / e.median, "decode": frames / d.median, "total": frames / total.median},
        "gflop": flops / 1e9,
        "gflops_per_s": {"best": flops / total.min / 1e9, "median": flops / total.median / 1e9},
        "matmul_peak_gflops_per_s": peak,
        "ratio_to_peak": {"best": flops / total.min / 1e9 / peak, "median": flops / total.median / 1e9 / peak},
        "matmul_sustained_gflops_per_s": runs.sustained,
        "ratio_to_sustained": {"best": max(per_run), "median": statistics.median(per_run)},
        "peak_rss_mib": runs.peak_rss_mib,
        "peak_cuda_mib": runs.peak_cuda_mib if device.type == "cuda" else None,
        "vs_fp32": None if fp32 is None else {
            "psnr_db": json_float(_psnr_between(video, fp32[1])),
            "latent_max_abs_diff": _latent_diff(latents, fp32[0]),
        },
    }  # fmt: skip


def synthetic_clips(shape: tuple[int, ...], count: int = 1, seed: int = 0) -> torch.Tensor:
    """`count` clips of `shape` (C, T, H, W): smooth moving colour gradients in [-1, 1], seeded."""
    c, t, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    phase = torch.rand(count, c, 1, 1, 1, generator=gen) * math.tau
    freq = 1.0 + torch.rand(count, c, 1, 1, 1, generator=gen) * 3.0
    tt = torch.arange(t).view(1, 1, t, 1, 1) / max(t, 1)
    yy = torch.linspace(0, 1, h).view(1, 1, 1, h, 1)
    xx = torch.linspace(0, 1, w).view(1, 1, 1, 1, w)
    return torch.sin(freq * (xx + 0.5 * yy + 0.3 * tt) * math.pi + phase).clamp(-1, 1)


def latent_bytes_per_clip(cfg: VidTwinConfig) -> dict[str, int]:
    """Tensor bytes of one clip (one tile) in each `.vtw` latent dtype (int8 includes its scales)."""
    return {
        dtype: sum(math.prod(shape) * ST_DTYPES[st].itemsize for st, shape in tensor_layout(cfg, 1, dtype, None).values())
        for dtype in LATENT_DTYPES
    }


def report_header(mode: str, loaded: LoadedModel, device: torch.device, load_seconds: dict[str, float]) -> dict:
    """The part of every bench report that describes the model, the machine and the FLOP count."""
    cfg = loaded.config
    return {
        "schema": SCHEMA,
        "mode": mode,
        "model": {"spec": loaded.spec, "source": loaded.source, "weights_sha256": loaded.sha256,
                  **asdict(ParameterCounts.of(loaded.model)), "config": cfg.to_dict()},
        "environment": environment(device),
        "load_seconds": load_seconds,
        "flops_per_clip": model_flops(cfg).to_dict(),
        "latent_values_per_clip": cfg.latent_values,
        "compression_rate": cfg.compression_rate,
        "latent_bytes_per_clip": latent_bytes_per_clip(cfg),
    }  # fmt: skip


def load_timed(spec: str | None) -> tuple[LoadedModel, float]:
    """Resolve a model and the seconds it took (file read or preset build, sha256 excluded)."""
    start = time.perf_counter()
    loaded = resolve_model(spec)
    return loaded, time.perf_counter() - start


def run_synthetic(
    spec: str | None,
    device: torch.device,
    precisions: Sequence[str],
    clips: int = 1,
    warmup: int = 1,
    repeat: int = 3,
    batch_size: int = 1,
    progress: Progress | None = None,
    warn: Warn | None = None,
    compile: bool = False,
) -> dict:
    """The `--synthetic` report: speed and memory of `spec` on generated clips, no video involved."""
    loaded, seconds = load_timed(spec)
    header = report_header("synthetic", loaded, device, {"model": seconds})
    x = synthetic_clips(loaded.config.clip_shape, clips)
    speed = speed_bench(loaded.model, device, precisions, x, warmup, repeat, batch_size, progress, warn, compile)
    return json_ready({**header, "speed": speed})


__all__ = ["PRECISIONS", "SCHEMA", "PeakMemory", "Timing", "environment", "latent_bytes_per_clip", "load_timed",
           "matmul_peak", "report_header", "run_synthetic", "speed_bench", "synthetic_clips"]
