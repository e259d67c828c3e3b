"""Child processes: how to start the dinogen CLI, its runs' wall time and peak memory, the figures of training runs."""

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from _timing import median


def dinogen_command(processes: int = 1) -> list[str]:
    """How to start the `dinogen` CLI: the console script beside this Python, else `python -m dinogen`;
    with several `processes`, under torchrun on this machine."""
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                "-m", "dinogen"]  # fmt: skip
    script = Path(sys.executable).parent / "dinogen"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dinogen"]


def tree_environment(tree: Path | None) -> dict[str, str] | None:
    """This process's environment with PYTHONPATH set to `tree` alone, so that no other checkout shadows it."""
    return None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}


def read_metrics(run_dir: Path) -> list[dict]:
    """The evaluations a training run wrote to its metrics.jsonl, in order."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def names_training(
    args, device: torch.device, run_dir: Path, steps: int, processes: int = 1, max_time: float | None = None
) -> list[str]:
    """`dinogen train -c names` on --names for `steps` steps (or `max_time` seconds), one evaluation at the end."""
    limit = "null" if max_time is None else max_time
    budget = [f"train.max_steps={steps}", f"train.max_time={limit}", "train.epochs=null", f"train.eval_every={steps}"]
    command = [*dinogen_command(processes), "train", "-q", "-c", "names", "--data", args.names, "-o", str(run_dir)]
    command += ["--overwrite", "--device", str(device), "--set", f"train.precision={args.precision}"]
    return command + [part for override in budget for part in ("--set", override)]


def trained_figures(command: list[str], run_dir: Path, repeats: int) -> dict[str, float]:
    """Medians over `repeats` runs of `command`: steps/s of training (metrics.jsonl), wall s and losses."""
    runs = []
    for _ in range(repeats):
        wall = run_child_checked(command).seconds
        last = read_metrics(run_dir)[-1]
        runs.append({"steps_per_s": last["step"] / last["elapsed"], "wall_s": wall, **last})
    return {key: median([r[key] for r in runs]) for key in ("steps_per_s", "wall_s", "train_loss", "val_loss")}


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


def run_child(
    command: Sequence[str], cwd: str | Path | None = None, timeout: float = 1800, env: dict[str, str] | None = None
) -> ChildRun:
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
            process = subprocess.Popen(
                launcher, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )
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


def run_child_checked(
    command: Sequence[str], cwd: str | Path | None = None, env: dict[str, str] | None = None
) -> ChildRun:
    """run_child, raising with the end of stderr when the command fails."""
    result = run_child(command, cwd, env=env)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"command failed with exit code {result.returncode}: {' '.join(command)}\n{tail}")
    return result
