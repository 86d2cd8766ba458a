"""Where a run executes: its device, threads, seeding, and its processes under torchrun.

One place for device choice, threads, precision and seeding (`pick_device`, `set_threads`,
`autocast_bf16`, `seed_everything`).

One run on several processes: `torchrun --nproc_per_node=N -m ibkd train|distill ...`.
torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `Dist.from_env` joins the process group (NCCL
on GPUs, gloo on CPUs). Every process builds the same length-bucketed batches from the same
seeded generator and trains on its own slice of each batch (`shard`), so a global batch, the
number of steps and the learning-rate schedule are those of a single-process run; DDP averages
the gradients (the training loop weights each slice by its share of the batch). Rank 0
validates and sends its numbers to the others (`from_rank0`), so early stopping is decided
once; only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ibkd.errors import IbkdError


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA, else Apple MPS, else the CPU; or the named device (`cpu`, `cuda`,
    `cuda:1`, `mps`), refused with an IbkdError when this machine does not have it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise IbkdError(f"--device {name!r}: expected auto, cpu, cuda or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise IbkdError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise IbkdError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps" and not _mps_available():
        raise IbkdError(f"--device {name}: Apple MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise IbkdError(f"--device {name!r}: expected auto, cpu, cuda or mps")
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 natively (Intel AMX or AVX512-BF16): read from
    /proc/cpuinfo's flags where there is one, else from torch's detected CPU capability."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "AMX" in torch.backends.cpu.get_cpu_capability()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_bf16(precision: str, device: torch.device):
    """The autocast context of a training step: bf16 autocast (torch.autocast; matrix products
    in bf16, reductions and the optimizer's state in fp32) when `precision` is "bf16", off for
    "fp32". bf16 runs on CUDA and on CPUs with native bf16 arithmetic (`native_bf16_cpu`);
    IbkdError elsewhere (emulated bf16 on a CPU is slower than fp32; MPS)."""
    if precision == "bf16" and not (
        device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())
    ):
        raise IbkdError(
            f"--precision bf16: for CUDA devices and CPUs with native bf16 (AMX or "
            f"AVX512-BF16), not this {device.type}"
        )
    return torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (every device) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def max_threads() -> int:
    """The most CPU threads a run may ask for: 4 per logical CPU of this machine (more only
    queue for the same cores; tens of thousands crash or hang OpenMP)."""
    return 4 * (os.cpu_count() or 1)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU threads; None keeps what the process has (torch's default:
    $OMP_NUM_THREADS when set, else the physical cores; a grid worker's share; torchrun's one
    per process). Returns the number in use. IbkdError for a number outside
    [1, `max_threads()`], before any thread starts."""
    if threads is not None:
        if not 1 <= threads <= max_threads():
            raise IbkdError(
                f"--threads {threads}: expected >= 1 and <= {max_threads()} "
                f"(4 per CPU of this machine's {os.cpu_count() or 1})"
            )
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job: `rank` of `world_size` processes (1 and rank 0
    outside torchrun), `local_rank` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process trains this run."""
        return self.world_size > 1

    @property
    def is_rank0(self) -> bool:
        """This process validates, reports and writes the run folder."""
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
        return index[self.rank :: self.world_size] if self.enabled else index

    def usable(self, index: torch.Tensor) -> bool:
        """Whether a batch gives every process at least one example (the same on all)."""
        return len(index) >= self.world_size

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model DistributedDataParallel-wrapped under torchrun; else the model itself."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait for every process (a no-op outside torchrun)."""
        if self.enabled:
            import torch.distributed as td

            td.barrier()

    def from_rank0(self, values: list[float], device: torch.device) -> list[float]:
        """Rank 0's `values` on every process."""
        if not self.enabled:
            return values
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=device)
        td.broadcast(t, src=0)
        return t.tolist()

    def close(self) -> None:
        """Leave the process group."""
        if self.enabled:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
