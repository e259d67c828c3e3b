"""How many CPU cores other programs leave to dinogen, read from Linux's /proc/stat (no torch needed)."""

import os
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
