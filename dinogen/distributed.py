"""More than one process: torchrun's environment, the process group, DistributedDataParallel, batch shards.

The training loop sees only a `World`. `SINGLE_PROCESS` is the world of one process, where every method returns its
input and nothing touches the process group, so one process trains exactly as it would without this module.
"""

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from dinogen.errors import DinogenError


@dataclass(frozen=True)
class World:
    """The processes training together: this one's rank, how many there are, and its index on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # picks this process's GPU on a machine with several

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run directory and reports progress."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """With CUDA, each rank trains on its own GPU, cuda:LOCAL_RANK."""
        if self.size == 1 or device.type != "cuda":
            return device
        torch.cuda.set_device(self.local_rank)  # NCCL works on the current device
        return torch.device("cuda", self.local_rank)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model whose backward averages the gradients of all ranks (one process: the model itself)."""
        if self.size == 1:
            return model
        device = next(model.parameters()).device
        return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def shard(self, rows: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's rows of a batch, rows[rank::size], and the weight of their loss: 1.

        A batch with fewer rows than ranks leaves a rank without any; it runs the batch's first row at
        weight 0 instead, because every rank must take part in every gradient all-reduce.
        """
        if self.size == 1:
            return rows, 1.0
        mine = rows[self.rank :: self.size]
        return (mine, 1.0) if len(mine) else (rows[:1], 0.0)

    def draw_own_randomness(self, seed: int, step: int) -> None:
        """Give each rank its own dropout masks (one process: the random state is left as it is)."""
        if self.size > 1:
            digest = hashlib.sha256(f"{seed} {self.rank} {step}".encode()).digest()
            torch.manual_seed(int.from_bytes(digest[:8], "little"))

    def agree(self, elapsed: float, stop: bool) -> tuple[float, bool]:
        """Rank 0's training time and whether any rank was asked to stop.

        Every rank then takes the same time-budget, schedule and stop decisions at the same step,
        so none waits forever in a collective the others have left.
        """
        if self.size == 1:
            return elapsed, stop
        shared = torch.tensor([elapsed if self.is_main else 0.0, float(stop)], dtype=torch.float64)
        dist.all_reduce(shared)
        return shared[0].item(), shared[1].item() > 0

    def sum(self, value: float) -> float:
        """The sum of `value` over all ranks."""
        if self.size == 1:
            return value
        shared = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(shared)
        return shared.item()

    def from_main(self, value: float) -> float:
        """Rank 0's `value`, on every rank."""
        if self.size == 1:
            return value
        shared = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(shared, src=0)
        return shared.item()

    def together(self, action: Callable[[], object]) -> object:
        """`action()`'s result; if it fails on any rank, every rank fails with the first failing rank's sentence.

        For work that only some ranks do (rank 0 writes the run directory): without it, the others would go
        on to the next collective step and wait there for ever.
        """
        result = failure = None
        try:
            result = action()
        except Exception as err:  # any failure: the other ranks must hear of it, not wait for this one
            if self.size == 1:
                raise
            sentence = str(err) if isinstance(err, DinogenError) else f"unexpected {type(err).__name__}: {err}"
            failure = (sentence, getattr(err, "exit_code", 1))
        failures = [failure for failure in self.gather(failure) if failure is not None]
        if failures:
            error = DinogenError(failures[0][0])
            error.exit_code = failures[0][1]
            raise error
        return result

    def gather(self, value: object) -> list[object]:
        """`value` (any picklable value) of every rank, in rank order, on every rank."""
        if self.size == 1:
            return [value]
        values: list[object] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def main_choice(self, value: object) -> object:
        """Rank 0's `value` (any picklable value, e.g. the run directory it chose), on every rank."""
        return self.gather(value)[0]


SINGLE_PROCESS = World()


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), known before any process group is joined."""
    return int(os.environ.get("RANK", "0"))


@contextmanager
def joined_world() -> Iterator[World]:
    """The world torchrun started this process in, its process group open meanwhile; else a single process.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address (MASTER_ADDR, MASTER_PORT).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield SINGLE_PROCESS
        return
    world = World(launched_rank(), size, int(os.environ.get("LOCAL_RANK", "0")))
    # The small agreements travel as CPU tensors over gloo; a GPU's gradients over NCCL.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, rank=world.rank, world_size=world.size)
    try:
        yield world
    finally:
        dist.destroy_process_group()
