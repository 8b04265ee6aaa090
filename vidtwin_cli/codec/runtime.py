"""Where and in which precision the model runs; the only place that looks at CUDA availability.

`ModelRunner` moves a model to the chosen device once, runs batches of clips through it under
`torch.inference_mode`, and guards low precision: a chunk whose output is not finite is
recomputed in float32 with a warning (never silently).

Low precision (bf16, fp16) is mixed precision: the weights of every matrix-product layer (Linear,
Conv) are cast once to the low dtype, everything else stays float32, and the model runs under
`torch.autocast`. Matrix products and attention run in the low dtype while the residual stream,
the norms and their tables stay float32: against casting the whole model, this keeps the
reconstruction ~12 dB closer to float32 at a few percent of the speed (docs/bench.md).

`compile=True` compiles every ST block with `torch.compile` (one graph serves all blocks of a
shape). It fuses the elementwise work around the matrix products; the first call pays the compile
time, which `vidtwin bench --compile` reports so the break-even point is known.

In fp32 on a CPU with oneDNN, every Linear is swapped for a `PackedLinear` whose weight is
reordered once into oneDNN's blocked layout, so no product repacks its weight per call (the
release model runs ~10% faster than through `F.linear`, docs/bench.md); `--compile` keeps the
plain layers and lets inductor do its own. The runner owns its model from then on: the weights'
fingerprint is taken when the model is loaded (`LoadedModel`), before any cast or packing.

On glibc, placing a model also tells malloc to keep freed large buffers for reuse
(`reuse_large_buffers`): a model runs the same shapes block after block, and without it each
buffer over 32 MiB is mapped fresh from the kernel and unmapped again, every block.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import platform
from collections.abc import Callable, Iterator

import torch
from torch import nn

from models import Latents, VidTwinAE
from models.st_transformer import STBlock

from vidtwin_cli.callbacks import Warn
from vidtwin_cli.codec.refine import refine_latents
from vidtwin_cli.defaults import AUTO
from vidtwin_cli.errors import RuntimeFailure, UsageError

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MATMUL_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present). Asking for missing CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was requested but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {name!r} (use cpu, cuda, cuda:N or auto)")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX). Without it (e.g. AVX2 only)
    oneDNN emulates bf16 and a bf16 model runs several times slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cuda_device_count() -> int:
    return torch.cuda.device_count()


def slow_bf16_warning(device: torch.device, dtype: torch.dtype) -> str | None:
    """The warning owed for bf16 on a CPU that only emulates it; None otherwise."""
    if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_native_bf16():
        # short enough for one 80-column line
        return f"no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()}); bf16 runs slower than fp32 here"
    return None


# mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


@functools.cache
def reuse_large_buffers() -> bool:
    """Have glibc serve large allocations from its heap and keep freed memory there (once per process).

    By default glibc maps each allocation over 32 MiB straight from the kernel and unmaps it on
    free, so every such activation costs page faults and kernel zeroing, in every block: the release
    model's MLP activations (38 MiB per tile) at batch 1, nearly all of them at batch 2 and up. With
    both thresholds at 1 GiB the heap settles after a run or two and its buffers are reused (release
    model, a batch of 2 tiles: 1.4 million page faults per encode+decode before, none after; peak RSS the
    same, docs/bench.md). The price: the process keeps its heap until it exits. Returns whether
    the setting took (False off glibc, e.g. macOS or musl, where nothing is changed).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def precision_name(name: str, device: torch.device) -> str:
    """`name`, or for "auto" the precision `device` runs best: fp16 on CUDA (NaN-guarded, see `ModelRunner`),
    bf16 on a CPU that multiplies bf16 natively (~3x fp32 on the release model), fp32 elsewhere."""
    if name != AUTO:
        return name
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """fp32 and bf16 everywhere; fp16 on CUDA only (CPU fp16 kernels are slow and not worth it); auto."""
    name = precision_name(name, device)
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r} (use {', '.join([*PRECISIONS, AUTO])})")
    if name == "fp16" and device.type == "cpu":
        raise UsageError("--precision fp16 needs --device cuda; on CPU use bf16 or fp32")
    return PRECISIONS[name]


class PackedLinear(nn.Module):
    """An nn.Linear whose weight lives in oneDNN's blocked layout (packed once), for inference; where a
    gradient is asked for (latent refinement), it runs as a plain Linear on the weight unpacked."""

    def __init__(self, linear: nn.Linear, rows: int) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)  # `rows`: a size hint
        self.weight = nn.Parameter(packed, requires_grad=False)  # same shape, so parameter counts hold
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:  # the fused op has no backward
            return nn.functional.linear(x, self.weight.to_dense(), self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def can_pack_linears(device: torch.device, dtype: torch.dtype) -> bool:
    """Packed oneDNN Linears apply to fp32 on a CPU whose torch has oneDNN and the two ops."""
    ops = ("_reorder_linear_weight", "_linear_pointwise")
    return (device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and all(hasattr(torch.ops.mkldnn, op) for op in ops))  # fmt: skip


def pack_linears(model: nn.Module, rows: int) -> None:
    """Swap every nn.Linear of `model` for a PackedLinear, in place."""
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is nn.Linear]  # fmt: skip
    for parent, name, child in swaps:
        setattr(parent, name, PackedLinear(child, rows))


class ModelRunner:
    """Runs encode/decode on batches of clips on one device in one precision."""

    def __init__(
        self,
        model: VidTwinAE,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        batch_size: int = 1,
        warn: Warn | None = None,
        compile: bool = False,
    ) -> None:
        if batch_size < 1:
            raise UsageError("--batch-size must be >= 1")
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.warn = warn or log.warning
        reuse_large_buffers()
        if slow := slow_bf16_warning(device, dtype):
            self.warn(slow)
        self.model = model.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        self._cast_matmul_weights(dtype)  # once, not per call
        self.packed = not compile and can_pack_linears(device, dtype)
        if self.packed:
            cfg = self.model.config
            pack_linears(self.model, batch_size * cfg.frames * cfg.grid**2)
        if compile:
            for block in self.model.modules():
                if isinstance(block, STBlock):
                    block.compile(dynamic=False)

    @property
    def config(self):
        return self.model.config

    def _cast_matmul_weights(self, dtype: torch.dtype) -> None:
        for m in self.model.modules():
            if isinstance(m, MATMUL_LAYERS):
                m.to(dtype)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @contextlib.contextmanager
    def _float32(self) -> Iterator[None]:
        """Temporarily run the model in float32 (fp16/bf16 -> fp32 -> back is exact for the weights)."""
        self._cast_matmul_weights(torch.float32)
        try:
            yield
        finally:
            self._cast_matmul_weights(self.dtype)

    def _guarded(self, what: str, fn: Callable[[], torch.Tensor | Latents]):
        with self._autocast():
            out = fn()
        tensors = (out.structure, out.dynamics_x, out.dynamics_y) if isinstance(out, Latents) else (out,)
        if all(torch.isfinite(t).all() for t in tensors):
            return out
        if self.dtype == torch.float32:
            raise RuntimeFailure(f"{what} produced non-finite values in float32 (bad weights or input?)")
        self.warn(f"{what}: non-finite values in {str(self.dtype).removeprefix('torch.')}; recomputing this chunk in fp32")
        with self._float32():
            return fn()

    @torch.inference_mode()
    def encode(
        self, clips: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Latents:
        """clips (N, C, T, H, W) in [-1, 1] -> float32 CPU Latents, in batches of `batch_size`."""
        parts = []
        for chunk in clips.split(self.batch_size):

            def run(chunk: torch.Tensor = chunk) -> Latents:
                return self.model.encode(chunk.to(self.device, torch.float32), sample=sample, generator=generator)

            parts.append(self._guarded("encode", run).to("cpu", torch.float32))
        return Latents.cat(parts)

    @torch.inference_mode()
    def decode(self, latents: Latents, only: str | None = None) -> torch.Tensor:
        """Latents (N clips) -> float32 CPU video (N, C, T, H, W) clamped to [-1, 1]."""
        parts = []
        n = latents.structure.shape[0]
        for start in range(0, n, self.batch_size):
            chunk = latents.select(slice(start, start + self.batch_size))

            def run(chunk: Latents = chunk) -> torch.Tensor:
                return self.model.decode(chunk.to(self.device, torch.float32), only=only)

            parts.append(self._guarded("decode", run).float().clamp_(-1, 1).cpu())
        return torch.cat(parts)

    def refine(self, clips: torch.Tensor, latents: Latents, steps: int, sigma: float) -> Latents:
        """Latents of `clips` (N, C, T, H, W) refined by `steps` of search (`codec/refine.py`), in batches of
        `batch_size`; a chunk whose search leaves non-finite values keeps the latents it came with."""
        parts = []
        n = latents.structure.shape[0]
        for start in range(0, n, self.batch_size):
            chunk, given = clips[start:start + self.batch_size], latents.select(slice(start, start + self.batch_size))
            with self._autocast():
                found = refine_latents(self.model.decode, chunk.to(self.device), given.to(self.device, torch.float32),
                                       steps, sigma)  # fmt: skip
            if not all(torch.isfinite(t).all() for t in (found.structure, found.dynamics_x, found.dynamics_y)):
                self.warn(f"refine: non-finite latents in {str(self.dtype).removeprefix('torch.')}; "
                          f"keeping the encoder's latents for {chunk.shape[0]} tile(s)")
                found = given
            parts.append(found.to("cpu", torch.float32))
        return Latents.cat(parts)
