"""The machine and the command a benchmark ran with: CPU, cores, memory, load, torch, device, dinogen's checkout."""

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

import dinogen


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or None


def _proc_field(path: str, key: str) -> str | None:
    """The first `key: value` of a /proc file, or None where there is no such file or field."""
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(key):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def cpu_set() -> str:
    """The cores this process may run on, as ranges: '0-1', '0,2-5'."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    ranges: list[list[int]] = []
    for core in cores:
        if ranges and core == ranges[-1][1] + 1:
            ranges[-1][1] = core
        else:
            ranges.append([core, core])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def torch_build() -> str:
    """CPU, CUDA x.y or ROCm x.y, and the CPU instruction set torch's kernels use (AMX where present)."""
    build = "CPU"
    if torch.version.cuda or torch.version.hip:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
    capability = torch.backends.cpu.get_cpu_capability()
    amx = " + AMX" if "amx_bf16" in (_proc_field("/proc/cpuinfo", "flags") or "").split() else ""
    return f"{build} build, CPU kernels {capability}{amx}"


def source_tree() -> Path:
    """The checkout this process imported dinogen from (the folder holding dinogen/)."""
    return Path(dinogen.__file__).resolve().parents[1]


def tree_version(tree: Path) -> str:
    """The git commit of a checkout, and whether its dinogen/ has uncommitted changes."""
    git = ["git", "-C", str(tree)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--", "dinogen"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "no git"
    if commit.returncode != 0:
        return "not a git checkout"
    return f"git {commit.stdout.strip()}" + (", uncommitted changes in dinogen/" if changes.stdout.strip() else "")


def machine(device: torch.device) -> dict[str, object]:
    """What the figures depend on: the command, CPU, cores, memory, load, torch, device, dinogen."""
    memory = (_proc_field("/proc/meminfo", "memtotal") or "0 kB").split()[0]
    tree = source_tree()
    info: dict[str, object] = {
        "command": shlex.join(sys.orig_argv),
        "directory": os.getcwd(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_set": cpu_set(),
        "memory_gib": round(int(memory) / 1024**2, 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "torch": str(torch.__version__),
        "torch_build": torch_build(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dinogen": f"{dinogen.__version__} from {tree} ({tree_version(tree)})",
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return info


def print_machine(title: str, info: dict[str, object]) -> None:
    print(title)
    for key, value in info.items():
        if key == "load_average":
            value = " / ".join(f"{load:.2f}" for load in value) + " (1 / 5 / 15 min, at the start)"
        print(f"  {key.replace('_', ' '):<14} {value}")
