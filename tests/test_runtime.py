"""ModelRunner precision: mixed bf16/fp16 (matmul weights cast once, fp32 elsewhere) and the NaN guard."""

from __future__ import annotations

import copy
import json
import math
import platform
import resource
import subprocess
import sys

import pytest
import torch
from torch import nn

from vidtwin_cli.codec.runtime import (
    MATMUL_LAYERS, ModelRunner, PackedLinear, can_pack_linears, cpu_has_native_bf16, precision_name,
)  # fmt: skip
from vidtwin_cli.codec.weights import resolve_model


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4 / float((a.double() - b.double()).pow(2).mean()))


def clips(cfg, n: int = 2) -> torch.Tensor:
    return torch.rand(n, *cfg.clip_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_bf16_casts_matmul_weights_once_and_keeps_the_rest_fp32(tiny_model):
    runner = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.bfloat16)
    for name, p in runner.model.named_parameters():
        owner = runner.model.get_submodule(name.rpartition(".")[0]) if "." in name else runner.model
        expected = torch.bfloat16 if isinstance(owner, MATMUL_LAYERS) else torch.float32
        assert p.dtype == expected, name
    assert runner.model.encoder.blocks[0].scale_shift_table.dtype == torch.float32


def test_cpu_bf16_warns_exactly_where_the_cpu_emulates_it(tiny_model):
    warnings: list[str] = []
    ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.bfloat16, warn=warnings.append)
    ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.float32, warn=warnings.append)
    assert len(warnings) == (0 if cpu_has_native_bf16() else 1)
    assert all("no native bf16" in w for w in warnings)


def test_bf16_stays_close_to_fp32(tiny_model):
    cpu = torch.device("cpu")
    fp32 = ModelRunner(copy.deepcopy(tiny_model), cpu, torch.float32)
    bf16 = ModelRunner(copy.deepcopy(tiny_model), cpu, torch.bfloat16, batch_size=1)
    x = clips(tiny_model.config)
    lat32, lat16 = fp32.encode(x), bf16.encode(x)
    assert lat16.structure.dtype == torch.float32  # outputs are float32 whatever runs inside
    torch.testing.assert_close(lat16.structure, lat32.structure, atol=0.05, rtol=0)
    out32, out16 = fp32.decode(lat32), bf16.decode(lat32)
    assert out16.dtype == torch.float32 and psnr(out16, out32) > 40


def test_fp32_runner_is_the_plain_model(tiny_model):
    x = clips(tiny_model.config, 1)
    runner = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.float32)
    with torch.no_grad():
        expected = tiny_model.decode(tiny_model.encode(x)).clamp(-1, 1)
    torch.testing.assert_close(runner.decode(runner.encode(x)), expected, atol=1e-5, rtol=0)


@pytest.mark.skipif(not can_pack_linears(torch.device("cpu"), torch.float32), reason="this torch has no oneDNN linear ops")
def test_fp32_cpu_runner_packs_every_linear_once(tiny_model):
    linears = sum(isinstance(m, nn.Linear) for m in tiny_model.modules())
    runner = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.float32)
    assert sum(isinstance(m, PackedLinear) for m in runner.model.modules()) == linears
    assert not any(isinstance(m, nn.Linear) for m in runner.model.modules())
    assert sum(p.numel() for p in runner.model.parameters()) == sum(p.numel() for p in tiny_model.parameters())
    compiled = ModelRunner(copy.deepcopy(tiny_model), torch.device("cpu"), torch.float32, compile=True)
    assert not any(isinstance(m, PackedLinear) for m in compiled.model.modules())  # inductor packs its own


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
def test_placing_a_model_keeps_its_fingerprint(precision):
    loaded = resolve_model("tiny")
    ModelRunner(loaded.model, torch.device("cpu"), precision, warn=lambda _: None)  # packs or casts in place
    assert loaded.sha256 == resolve_model("tiny").sha256  # what .vtw files record and decode checks


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_overflow_is_recomputed_in_fp32_with_a_warning(tiny_model):
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.decoder.final_layer.linear.weight.mul_(3e4)  # outputs beyond fp16's 65504, fine in fp32
    reference = ModelRunner(copy.deepcopy(model), torch.device("cuda"), torch.float32)
    warnings: list[str] = []
    runner = ModelRunner(model, torch.device("cuda"), torch.float16, warn=warnings.append)
    latents = reference.encode(clips(tiny_model.config, 1))
    out = runner.decode(latents)
    assert warnings and "recomputing this chunk in fp32" in warnings[0]
    torch.testing.assert_close(out, reference.decode(latents), atol=1e-5, rtol=0)
    assert all(m.weight.dtype == torch.float16 for m in runner.model.modules() if isinstance(m, nn.Linear))


FAULTS_OF_A_LATER_64MIB_BUFFER = """
import resource, sys, torch
from vidtwin_cli.codec.runtime import reuse_large_buffers
if sys.argv[1] == "reuse":
    assert reuse_large_buffers()
for _ in range(10):  # the heap settles, as it does over a model's first blocks
    torch.ones(16 << 20)  # 64 MiB: allocated, written and freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(16 << 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc tuning is glibc-only")
def test_large_buffers_are_reused_instead_of_mapped_fresh():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_OF_A_LATER_64MIB_BUFFER, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    pages = (64 << 20) // resource.getpagesize()
    assert faults("default") > pages // 2  # glibc unmapped the first buffer: every page faults in again
    assert faults("reuse") < pages // 20


def test_auto_device_and_precision_follow_the_machine(cli, tmp_path, sample_video):
    """The defaults: CUDA in fp16 when there is a GPU, else the CPU in bf16 when it multiplies bf16 natively
    (asked of oneDNN, as the runtime does), else fp32; reported in --json; explicit flags win."""
    cuda = torch.cuda.is_available()
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    expected = ("cuda", "fp16") if cuda else ("cpu", "bf16" if native else "fp32")
    auto = cli(["encode", sample_video, "-o", tmp_path / "a.vtw", "--model", "tiny", "--json"])
    assert auto.exit_code == 0, auto.stderr
    assert (json.loads(auto.stdout)["device"], json.loads(auto.stdout)["precision"]) == expected
    explicit = cli(["decode", tmp_path / "a.vtw", "-o", tmp_path / "a.mp4", "--device", "cpu", "--precision", "fp32",
                    "--json"])  # fmt: skip
    assert explicit.exit_code == 0, explicit.stderr
    assert (json.loads(explicit.stdout)["device"], json.loads(explicit.stdout)["precision"]) == ("cpu", "fp32")
    assert precision_name("auto", torch.device("cuda")) == "fp16"  # the choice, without needing a GPU
    assert precision_name("bf16", torch.device("cuda")) == "bf16"
    refused = cli(["encode", sample_video, "-o", tmp_path / "b.vtw", "--model", "tiny", "--device", "cpu",
                   "--precision", "fp16"])  # fmt: skip
    assert refused.exit_code == 2 and "fp16" in refused.stderr and not (tmp_path / "b.vtw").exists()
