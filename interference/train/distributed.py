"""One process or several: the little the training loop needs to run data-parallel.

A plain `python -m interference.train ...` is one process and uses plain PyTorch on the model's device. Launched as
N processes by `torchrun --nproc-per-node N -m interference.train ...` or `accelerate launch --multi_gpu
--num_processes N -m interference.train ...` (both set WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT),
each process joins a `torch.distributed` group (NCCL on GPUs, one per process by LOCAL_RANK; Gloo on CPUs) and
the trained model is wrapped in `DistributedDataParallel`, which averages gradients across processes after every
backward pass. Nothing here needs `accelerate`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import torch


class Runtime:
    """This process's place in the run: rank, number of processes, device; the collective operations it needs."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0")) if self.world > 1 else 0
        self.is_main = self.rank == 0
        self.device: torch.device | None = None  # None: stay on the model's device (one process)
        if self.world > 1:
            import torch.distributed as dist

            if torch.cuda.is_available():
                local = int(os.environ.get("LOCAL_RANK", "0"))
                torch.cuda.set_device(local)
                self.device, backend = torch.device("cuda", local), "nccl"
            else:
                self.device, backend = torch.device("cpu"), "gloo"
            if not dist.is_initialized():
                dist.init_process_group(backend)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to run training forward passes through: `model` itself, or DDP over it (which first copies
        rank 0's parameters to every process). Call after the trainable flags are set: DDP syncs only those."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        """This process's batches of an epoch: every N-th, the list wrapped around so that all get the same count
        (DDP needs every process to take the same number of steps)."""
        if self.world == 1:
            return batches
        per = math.ceil(len(batches) / self.world)
        padded = (batches * self.world)[: per * self.world]
        return padded[self.rank :: self.world]

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite `tensors` in place with rank 0's values (on every process)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for tensor in tensors:
            dist.broadcast(tensor, src=0)

    def wait(self) -> None:
        """Barrier: every process reaches this point before any goes on."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
