"""Timing in this process: medians, wall-clock readings that cover queued device work, per-step clocks."""

import statistics
import time
from collections.abc import Callable, Sequence

import torch


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


class StepClock:
    """An on_step callback that marks the end of every optimizer step (CUDA events on a GPU: no sync per step)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def __call__(self, step: int) -> None:
        if self.cuda:
            self.marks.append(torch.cuda.Event(enable_timing=True))
            self.marks[-1].record()
        else:
            self.marks.append(time.perf_counter())

    def seconds(self, first: int, last: int) -> float:
        """Seconds between the ends of steps `first` and `last` (1-based step numbers)."""
        if self.cuda:
            self.marks[last - 1].synchronize()
            return self.marks[first - 1].elapsed_time(self.marks[last - 1]) / 1000
        return self.marks[last - 1] - self.marks[first - 1]
