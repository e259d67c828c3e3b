"""Helpers shared by the benchmark scripts: options, the machine, timing, child processes, tables, JSON."""

import argparse
import json
import os
import platform
import shlex
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
from types import SimpleNamespace

import torch

import dinogen
from dinogen.bundled import bundled_file
from dinogen.device import resolve_device
from dinogen.errors import DinogenError

MB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]
DEFAULT_NAMES = REPO.parent / "shared" / "data" / "names.txt"
CHECKPOINT_EPOCHS = 3  # of the model trained to sample from when no --checkpoint is given (1 with --quick)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Options


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_OPTIONS: dict[str, tuple[str, dict]] = {
    "device": ("--device", {"default": "cpu", "help": "cpu, cuda, cuda:N, mps or auto [default: cpu]"}),
    "precision": ("--precision", {"choices": ["fp32", "bf16"], "default": "fp32", "help": "of training [fp32]"}),
    "batch-size": ("--batch-size", {"help": "train.batch_size: a number or auto [default: the config's]"}),
    "repeats": ("--repeats", {"type": _positive, "default": 5, "help": "measurements per figure; medians [5]"}),
    "quick": ("--quick", {"action": "store_true", "help": "a smoke test: little work, figures not meaningful"}),
    "names": ("--names", {"default": str(DEFAULT_NAMES), "help": "a second names file [../shared/data/names.txt]"}),
    "checkpoint": ("--checkpoint", {"help": "checkpoint or run directory to sample from [default: train one]"}),
    "against": (
        "--against",
        {"metavar": "PATH", "help": "also measure the dinogen source tree at PATH (a checkout), runs alternating"},
    ),
}


def parser(doc: str, *options: str) -> argparse.ArgumentParser:
    """An argument parser with the named common options (keys of _OPTIONS) and --json."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    for option in options:
        flag, settings = _OPTIONS[option]
        parser.add_argument(flag, **settings)
    parser.add_argument("--json", metavar="FILE", help="also write the machine, command and figures to FILE")
    if "against" in options:  # a child of --against writes its figures here instead of printing tables
        parser.add_argument("--as-child", metavar="FILE", help=argparse.SUPPRESS)
    return parser


def rounds(args: argparse.Namespace) -> int:
    """How many times each figure is measured: --repeats, at most 2 with --quick."""
    return min(args.repeats, 2) if args.quick else args.repeats


def amounts(args: argparse.Namespace, full: dict, quick: dict) -> SimpleNamespace:
    """How much work each measurement does: `full`, or `quick` with --quick (which may set its own repeats)."""
    return SimpleNamespace(**({"repeats": rounds(args)} | (quick if args.quick else full)))


# ---------------------------------------------------------------------------------------------------------
# The machine and the command


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


# ---------------------------------------------------------------------------------------------------------
# The driver: one measurement, or this dinogen against another checkout


def run(
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, torch.device, Path], dict],
    report: Callable[[dict], None],
    compare: Callable[[dict], dict[str, tuple[float, str]]] | None = None,
    checkpoint: bool = False,
) -> int:
    """Print the machine and command, measure (with a checkpoint to sample if asked), print tables, write JSON.

    `compare` names the figures --against sets side by side: label -> (value, "higher" or "lower" is better).
    """
    script = Path(sys.argv[0]).name
    try:
        device = resolve_device(args.device)
    except DinogenError as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        return 2
    child_file = getattr(args, "as_child", None)
    document: dict[str, object] = {"machine": machine(device), "options": vars(args)}
    if not child_file:
        print_machine(f"dinogen benchmark: {script}", document["machine"])
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="dinogen-bench-") as tmp:
            if getattr(args, "against", None) and not child_file:
                document["against"] = side_by_side(args, device, Path(tmp), checkpoint)
            else:
                if checkpoint:
                    args.checkpoint, args.checkpoint_source = prepare_checkpoint(args, device, Path(tmp))
                document["results"] = results = measure(args, device, Path(tmp))
                if child_file:
                    figures = {"dinogen": dinogen.__file__, "figures": compare(results), "results": results}
                    write_json(child_file, figures)
                    return 0
                report(results)
    except (DinogenError, RuntimeError) as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        return 1
    document["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {document['total_seconds']:.1f} s")
    if args.json:
        write_json(args.json, document)
        print(f"wrote {args.json}")
    return 0


def write_json(path: str | Path, document: dict) -> None:
    Path(path).write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def side_by_side(args: argparse.Namespace, device: torch.device, workdir: Path, checkpoint: bool) -> dict:
    """Run this script in child processes on this dinogen (A) and the tree at --against (B), A, B, A, B, ...

    Each child measures every figure once (--repeats 1) with PYTHONPATH set to its tree alone, and says
    where it imported dinogen from; the table gives each tree's median and their ratio. Without
    --checkpoint, each tree trains its own model to sample from (a checkpoint's format may change).
    """
    trees = {"A": source_tree(), "B": Path(args.against).resolve()}
    if not (trees["B"] / "dinogen" / "__init__.py").is_file():
        raise DinogenError(f"--against {trees['B']} holds no dinogen/ package; give the root of a checkout")
    extra: dict[str, list[str]] = {"A": [], "B": []}
    if checkpoint:
        for label, tree in trees.items():
            (workdir / label).mkdir()
            extra[label] = ["--checkpoint", str(prepare_checkpoint(args, device, workdir / label, tree)[0])]
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for round_ in range(rounds(args)):
        for label, tree in trees.items():
            log(f"against: round {round_ + 1} of {rounds(args)}, {label} = {tree} ...")
            runs[label].append(_child_figures(tree, extra[label]))
    figures = {label: {name: [run["figures"][name] for run in runs[label]] for name in runs["A"][0]["figures"]}
               for label in trees}  # fmt: skip
    rows = []
    for name, values in figures["A"].items():
        a, b = median([v for v, _ in values]), median([v for v, _ in figures["B"][name]])
        better = values[0][1]
        rows.append({"figure": name, "A": a, "B": b, "A_vs_B": a / b if better == "higher" else b / a})
    print_table(
        f"Side by side, {rounds(args)} run(s) of each tree, alternating A, B, A, B, ...",
        ["figure", "A median", "B median", "A vs B"],
        [[r["figure"], fmt_figure(r["A"]), fmt_figure(r["B"]), f"{r['A_vs_B']:.2f}x"] for r in rows],
        [f"{label}: dinogen imported from {runs[label][0]['dinogen']} ({tree_version(tree)})"
         for label, tree in trees.items()]
        + ["A vs B: A's figure over B's where higher is better, B's over A's for times and sizes: "
           "above 1.00x, A does better"],
    )  # fmt: skip
    return {"trees": {label: str(tree) for label, tree in trees.items()}, "rows": rows, "runs": runs}


def tree_environment(tree: Path | None) -> dict[str, str] | None:
    """This process's environment with PYTHONPATH set to `tree` alone, so that no other checkout shadows it."""
    return None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}


def _child_figures(tree: Path, extra: list[str]) -> dict:
    """This script's figures, measured once in a child process that imports dinogen from `tree`."""
    with tempfile.TemporaryDirectory(prefix="dinogen-bench-child-") as tmp:
        report = Path(tmp) / "figures.json"
        command = [sys.executable, str(Path(sys.argv[0]).resolve()), *sys.argv[1:], *extra]
        command += ["--repeats", "1", "--as-child", str(report)]  # one measurement per run: the parent alternates
        done = subprocess.run(command, env=tree_environment(tree), stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"the run on {tree} failed with exit code {done.returncode}")
        result = json.loads(report.read_text(encoding="utf-8"))
    imported = Path(result["dinogen"]).resolve()
    if not imported.is_relative_to(tree):
        raise RuntimeError(f"the run meant for {tree} imported dinogen from {imported}")
    log(f"against: dinogen imported from {imported}")
    return result


# ---------------------------------------------------------------------------------------------------------
# Data, configs and the checkpoint to sample from


def default_config_path() -> Path:
    path = bundled_file("configs/default.yaml")
    if path is None:
        raise DinogenError("configs/default.yaml is not bundled with this dinogen")
    return path


def find_corpora(args: argparse.Namespace) -> dict[str, Path]:
    """The names files to train on: the bundled dinosaurs and --names (skipped with a warning if absent)."""
    found = {"dinos": bundled_file("data/dinos.txt")}
    names = Path(args.names)
    if names.is_file():
        found[names.stem] = names
    else:
        log(f"warning: --names {names} does not exist; only data/dinos.txt is used")
    return found


def prepare_checkpoint(
    args: argparse.Namespace, device: torch.device, workdir: Path, tree: Path | None = None
) -> tuple[Path, str]:
    """The checkpoint to sample from: --checkpoint, or a short `dinogen train` run in `workdir` (of `tree`)."""
    if args.checkpoint:
        path = Path(args.checkpoint).resolve()
        if not path.exists():
            raise DinogenError(f"--checkpoint {path} does not exist")
        return path, f"given: {path}"
    epochs = 1 if args.quick else CHECKPOINT_EPOCHS
    out = workdir / "sample-model"
    command = [*dinogen_command(), "train", "-q", "-c", "default", "-o", str(out)]  # the tree's own default.yaml
    command += ["--device", str(device), "--set", f"train.epochs={epochs}"]
    log(f"checkpoint: {' '.join(command[1:])} ...")
    run_child_checked(command, cwd=workdir, env=tree_environment(tree))  # in workdir, data/dinos.txt is the bundled one
    return out, f"trained for this benchmark: dinogen train --set train.epochs={epochs} (configs/default.yaml, dinos)"


# ---------------------------------------------------------------------------------------------------------
# Timing in this process


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


# ---------------------------------------------------------------------------------------------------------
# Child processes: the CLI, its wall time and peak memory


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


# ---------------------------------------------------------------------------------------------------------
# Tables


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


def fmt_figure(value: float) -> str:
    """A figure of any size: whole numbers from 1,000 up, three significant digits below."""
    return fmt_int(value) if abs(value) >= 1000 else f"{value:.3g}"
