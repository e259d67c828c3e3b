import os

import pytest
import torch

from dinogen import cpu


def _ticks(busy_shares: dict[int, float]):
    """A fake /proc/stat reader: each call advances every CPU by 100 ticks, `share` of them busy."""
    calls = []

    def read(cpus):
        calls.append(1)
        step = len(calls)
        return {c: (round(step * 100 * (1 - share)), step * 100) for c, share in busy_shares.items() if c in cpus}

    return read


@pytest.mark.parametrize(
    ("shares", "free"), [({0: 0.02, 1: 0.03}, 2), ({0: 1.0, 1: 0.05}, 1), ({0: 0.5, 1: 0.55}, 1), ({0: 1, 1: 1}, 1)]
)
def test_free_cores_adds_up_the_busy_shares(monkeypatch, shares, free):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(cpu, "_cpu_times", _ticks(shares))
    assert cpu.free_cores(interval=0) == free


def test_free_cores_reads_this_machine():
    free = cpu.free_cores(interval=0.05)
    assert free is None or 1 <= free <= len(os.sched_getaffinity(0))


def test_training_takes_the_idle_cores_unless_told(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "unset below")  # recorded: the test leaves the environment as it was
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(cpu, "free_cores", lambda: 1)
    told = []
    monkeypatch.setattr(torch, "set_num_threads", told.append)  # torch is imported already: it is told directly
    cpu.use_the_free_cores()
    assert os.environ["OMP_NUM_THREADS"] == "1" and told == [1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    cpu.use_the_free_cores()
    assert os.environ["OMP_NUM_THREADS"] == "2" and told == [1]  # the user's choice stands
