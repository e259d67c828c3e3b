"""Helpers shared by the benchmark scripts: timing, child-process runs, the environment, plain-text tables."""

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

import dinogen

MB = 1024 * 1024


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


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(device: torch.device) -> dict[str, object]:
    """What the figures depend on: versions, threads, device, CPU and date."""
    info: dict[str, object] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dinogen_version": dinogen.__version__,
        "torch_version": str(torch.__version__),
        "torch_num_threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def dinogen_command(processes: int = 1) -> list[str]:
    """How to start the `dinogen` CLI: the console script beside this Python, else `python -m dinogen`;
    with several `processes`, under torchrun on this machine."""
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                "-m", "dinogen"]  # fmt: skip
    script = Path(sys.executable).parent / "dinogen"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dinogen"]


def read_metrics(run_dir: Path) -> list[dict]:
    """The evaluations a training run wrote to its metrics.jsonl, in order."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@dataclass
class ChildRun:
    """One finished child process: its wall time and peak resident memory."""

    seconds: float
    max_rss_bytes: int
    returncode: int
    stderr: str


# Runs a command and writes its peak RSS (ru_maxrss) and wall seconds to the file named first.
# Linux carries a process's RSS high-water mark across exec, so a child forked straight from this
# benchmark (hundreds of MB of torch and models) would report at least the benchmark's own RSS; forked
# from this small launcher it starts from a few MB instead.
_LAUNCHER = """
import os, sys, time
report, command = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(command[0], command)
    except OSError as err:
        sys.stderr.write(f"cannot run {command[0]}: {err}\\n")
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as file:
    file.write(f"{usage.ru_maxrss} {seconds!r}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(command: Sequence[str], cwd: str | Path | None = None, timeout: float = 1800) -> ChildRun:
    """Run `command` with stdout discarded; measure its wall time and peak resident memory (ru_maxrss).

    A small launcher forks the command and reads its resource usage with os.wait4, which is that one
    child's (getrusage(RUSAGE_CHILDREN) would be the largest of all children so far). The wall time is
    taken in the launcher too, so its own start-up is not counted.
    """
    with tempfile.TemporaryDirectory(prefix="dinogen-bench-") as tmp:
        report = Path(tmp) / "usage"
        err_path = Path(tmp) / "stderr"
        launcher = [sys.executable, "-I", "-c", _LAUNCHER, str(report), *command]
        with open(err_path, "wb") as err:
            # A session of its own, so that a timeout can stop the launcher and the command together.
            process = subprocess.Popen(launcher, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise RuntimeError(f"timed out after {timeout:g} s: {' '.join(command)}") from None
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        if not report.exists():
            raise RuntimeError(f"could not launch {' '.join(command)}:\n{stderr}")
        max_rss, seconds = report.read_text().split()
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return ChildRun(float(seconds), int(max_rss) * unit, process.returncode, stderr)


def run_child_checked(command: Sequence[str], cwd: str | Path | None = None) -> ChildRun:
    """run_child, raising with the end of stderr when the command fails."""
    result = run_child(command, cwd)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"command failed with exit code {result.returncode}: {' '.join(command)}\n{tail}")
    return result


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> None:
    """A plain-text table: text columns left-aligned, numbers right-aligned (rows hold formatted cells)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    left = [bool(rows) and isinstance(rows[0][i], str) and not _numeric(rows[0][i]) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(values, widths, left, strict=True))

    print(f"\n{title}")
    print("=" * len(title))
    print(line(headers).rstrip())
    print(line(["-" * w for w in widths]).rstrip())
    for row in cells:
        print(line(row).rstrip())
    for note in notes:
        print(f"  {note}")


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return stripped in ("-", "n/a")
    return True


def fmt_int(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}"  # value != value: NaN


def fmt_float(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:,.{digits}f}"


def fmt_pct(value: float) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"
