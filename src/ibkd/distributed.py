"""One run on several processes: `torchrun --nproc_per_node=N -m ibkd train|distill ...`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `Dist.from_env` joins the process group (NCCL
on GPUs, gloo on CPUs). Every process builds the same length-bucketed batches from the same
seeded generator and trains on its own slice of each batch (`shard`), so a global batch, the
number of steps and the learning-rate schedule are those of a single-process run; DDP averages
the gradients (the training loop weights each slice by its share of the batch). Rank 0
validates and sends its numbers to the others (`from_main`), so early stopping is decided once;
only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ibkd.errors import IbkdError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> tuple[Dist, torch.device]:
        """The process group torchrun describes (none outside torchrun), and this process's
        device: with CUDA, GPU LOCAL_RANK."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(), device
        import torch.distributed as td

        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            if local >= torch.cuda.device_count():
                raise IbkdError(
                    f"torchrun: local rank {local} but {torch.cuda.device_count()} GPU(s); use "
                    "--nproc_per_node at most the number of GPUs"
                )
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise IbkdError(f"torchrun: DDP runs on CUDA or CPU, not {device.type}")
        if not td.is_initialized():
            td.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world, local), device

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This process's slice of a batch of example indices."""
        return index[self.rank :: self.world] if self.enabled else index

    def usable(self, index: torch.Tensor) -> bool:
        """Whether a batch gives every process at least one example (the same on all)."""
        return len(index) >= self.world

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as td

            td.barrier()

    def from_main(self, values: list[float], device: torch.device) -> list[float]:
        """Rank 0's `values` on every process."""
        if not self.enabled:
            return values
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=device)
        td.broadcast(t, src=0)
        return t.tolist()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
