"""Process group set-up for `torchrun` (DDP) and the few collectives the training loop needs.

This is the one module that reads the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK).
A plain `vidtwin train ...` is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vidtwin_cli.errors import RuntimeFailure, UsageError
from vidtwin_cli.codec.runtime import cuda_device_count, resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any rank (used to stop all ranks at the same step)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def check_in_sync(self, fingerprint: torch.Tensor) -> None:
        """Raise unless every rank holds the same weights (compared through a float64 fingerprint)."""
        if not self.distributed:
            return
        mine = fingerprint.detach().to(self.device, torch.float64).reshape(1)
        lo, hi = mine.clone(), mine.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if lo.item() != hi.item():
            raise RuntimeFailure(f"DDP ranks diverged: weight fingerprints range {lo.item()!r} .. {hi.item()!r}")

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Average scalar tensors over ranks (one collective), as floats."""
        if not values:
            return {}
        keys = sorted(values)
        t = torch.stack([values[k].detach().float().reshape(()).to(self.device) for k in keys])
        if self.distributed:
            dist.all_reduce(t)
            t /= self.world_size
        return dict(zip(keys, t.tolist()))


def init_distributed(device: str) -> DistContext:
    """Join the torchrun process group if launched by it (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=resolve_device(device))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    base = resolve_device(device)
    if base.type == "cuda":
        if cuda_device_count() < int(os.environ.get("LOCAL_WORLD_SIZE", world)):
            raise UsageError(f"{os.environ.get('LOCAL_WORLD_SIZE', world)} processes per node but only "
                             f"{cuda_device_count()} CUDA device(s)")
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if base.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, base)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
