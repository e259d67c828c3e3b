"""How many CPU cores other programs leave to dinogen, read from Linux's /proc/stat (no torch needed)."""

import os
import sys
import time


def free_cores(interval: float = 0.1) -> int | None:
    """Cores of this process's CPU set that stayed idle over `interval` seconds (at least 1); None off Linux.

    Each core's busy share is 1 - idle time / elapsed time; the free cores are the CPU set's size minus
    the busy shares added up, rounded: one program keeping a core at 100% leaves one core of two.
    """
    try:
        cpus = os.sched_getaffinity(0)
        before = _cpu_times(cpus)
        time.sleep(interval)
        after = _cpu_times(cpus)
    except (AttributeError, OSError, ValueError):
        return None
    busy = 0.0
    for cpu, (idle, total) in after.items():
        idle_before, total_before = before.get(cpu, (idle, total))
        elapsed = total - total_before
        busy += 1 - (idle - idle_before) / elapsed if elapsed > 0 else 0.0
    return max(1, round(len(cpus) - busy))


def _cpu_times(cpus: set[int]) -> dict[int, tuple[int, int]]:
    """(idle, total) clock ticks of each CPU in `cpus` since boot."""
    times = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
                times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def use_the_free_cores() -> None:
    """Train with as many threads as other programs leave cores idle, unless OMP_NUM_THREADS says otherwise.

    torch starts one thread per core, and its threads wait for each other at every small step; when another
    program holds a core, the thread queued behind it holds up the rest (training ran 26x slower beside one
    busy process, and 1 thread fewer brings it back). Before torch is imported the variable sets its threads;
    after, torch is told directly (before its first parallel work, which is what matters).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return
    free = free_cores()
    if free is None or free >= len(os.sched_getaffinity(0)):
        return
    os.environ["OMP_NUM_THREADS"] = str(free)  # also what a process started from this one inherits
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(free)
