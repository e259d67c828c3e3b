"""Speed and memory of dinogen's real code paths: training, the recurrent layer alone, sampling, the CLI.

For each cell (rnn, gru, lstm) at two sizes -- "default" (the model section and train.batch_size of
configs/default.yaml, read at run time) and "makemore" (embedding 64, hidden 64, 1 layer, dropout 0,
batch 32) -- on the bundled data/dinos.txt and on a second names file (--names):

  training    Trainer.fit (the real loop, built by dinogen.run.Run) for warm-up + repeats x steps
              optimizer steps, with eval_every beyond the budget so no validation pass runs inside the
              timing. Reported: real characters/s (name characters plus one end token per name, padding
              not counted: EncodedNames.lengths of each batch's rows), padded positions/s (rows x batch
              width), the median step time, and the epoch time estimated as batches per epoch x mean
              step time. The batches are those of EncodedNames.batch_plan(batch_size, seed + epoch),
              the plan Trainer.fit follows.
  padding     the share of padded positions, 1 - real/padded, over the batches of epoch 0's plan.
  layer       the recurrent layer alone (the nn.RNN/GRU/LSTM that CharRNN builds) forward + backward on
              random input of shape (batch size, mean batch width of the plan, embedding), in padded
              positions/s; and loop/layer, the training loop's padded positions/s over the layer's
              (target: at least 40% at the default size).

With a checkpoint (--checkpoint, else `dinogen train -o <tmp>/default --set train.epochs=3`):

  sampling    dinogen.sample.Generator names/s at batch sizes 256, 1024, 4096 and 10000; the time to
              sample 10,000 names at temperature 1.0 with the default batch size; and the cost of
              unique=True, novel=True (the CLI's --unique --novel) over plain sampling at N = 10,000
              and 100,000; 10,000 names with min_length=6, max_length=12; Generator.most_likely for
              N = 100 and 1,000.
  memory      peak resident memory (ru_maxrss of the child process) of `dinogen train` for a fixed
              number of steps, `dinogen sample -n 10000 -o FILE` and `dinogen sample -n 1000000 -o FILE`
              (target: the 1,000,000 run within 100 MB of the 10,000 run).
  startup     wall time of `dinogen --help` and `dinogen sample CHECKPOINT -n 1`.

On --names, with configs/names.yaml for a fixed number of steps (no time budget):

  ddp         `dinogen train` in one process against `torchrun --nproc-per-node N -m dinogen train` (the
              same global batch, shared by N ranks over gloo or NCCL): optimizer steps per second of
              training time (metrics.jsonl's elapsed: start-up and validation excluded), wall time of
              the whole command, and the train and validation losses at the last step.
  busy        `dinogen train` steps/s on a quiet machine and beside one busy process (a Python loop
              that keeps a core at 100%), under each OpenMP thread setting (THREAD_SETTINGS): the
              CLI's own choice (threads = cores left idle), all cores with torch's default, passive
              and short-spinning OpenMP waits, one thread.

Every figure is the median of --repeats measurements. Tables go to stdout, progress to stderr.

Run from the repository root:

    python benchmarks/speed.py --json speed.json
    python benchmarks/speed.py --quick         # smoke test, under a minute on an idle machine; figures not meaningful
    python benchmarks/speed.py --device cuda --precision bf16 --skip-memory --skip-startup
    python benchmarks/speed.py --precision bf16 --repeats 3 --skip-train --skip-sample --skip-memory --skip-startup
"""

import argparse
import copy
import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import (
    MB,
    dinogen_command,
    environment,
    fmt_float,
    fmt_int,
    fmt_pct,
    median,
    print_table,
    read_metrics,
    run_child_checked,
    timed,
)

from dinogen.bundled import bundled_file
from dinogen.config import Config, load_config
from dinogen.data import EncodedNames
from dinogen.device import resolve_device
from dinogen.errors import DinogenError
from dinogen.model import CharRNN
from dinogen.run import Run
from dinogen.sample import Generator, NotEnoughNames

REPO = Path(__file__).resolve().parents[1]
CELLS = ("rnn", "gru", "lstm")
MAKEMORE_MODEL = {"embedding_dim": 64, "hidden_size": 64, "num_layers": 1, "dropout": 0.0}
MAKEMORE_BATCH_SIZE = 32
LAYER_TARGET = 0.40  # loop / layer-alone padded positions per second, at the default size
MEMORY_TARGET_BYTES = 100 * MB  # sampling 1,000,000 names may use this much more than 10,000
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Settings:
    """How much work each measurement does; --quick shrinks everything."""

    repeats: int
    warmup_steps: int = 20  # training steps before timing starts
    steps: int = 200  # timed training steps per repeat
    layer_warmup: int = 5
    layer_iters: int = 20  # forward + backward passes per repeat of the layer micro-benchmark
    sample_batch_sizes: tuple[int, ...] = (256, 1024, 4096, 10000)
    sample_min_names: int = 20_000  # names per throughput measurement (at least two batches of the largest)
    sample_n: int = 10_000  # "time to sample N names"
    most_likely_ns: tuple[int, ...] = (100, 1_000)  # `--most-likely -n N`
    filter_ns: tuple[int, ...] = (10_000, 100_000)  # N for the --unique --novel cost ratio
    checkpoint_epochs: int = 3
    memory_train_steps: int = 200
    memory_sample_ns: tuple[int, int] = (10_000, 1_000_000)
    child_repeats: int = 5  # runs of each CLI command (memory, start-up, ddp)
    ddp_steps: int = 200
    busy_steps: int = 200  # training steps per run of the busy-machine table
    busy_seconds: float = 20.0  # or at most this many seconds of training


def settings_for(args: argparse.Namespace) -> Settings:
    if not args.quick:
        return Settings(repeats=args.repeats, child_repeats=args.repeats)
    return Settings(
        repeats=min(args.repeats, 2),
        warmup_steps=2,
        steps=5,
        layer_warmup=2,
        layer_iters=3,
        sample_min_names=0,  # one batch per batch size
        sample_n=1_000,
        most_likely_ns=(10,),
        filter_ns=(1_000,),
        checkpoint_epochs=1,
        memory_train_steps=10,
        memory_sample_ns=(1_000, 10_000),
        child_repeats=1,
        ddp_steps=5,
        busy_steps=5,
    )


# ---------------------------------------------------------------------------------------------------------
# Configurations


def default_config_path() -> Path:
    path = bundled_file("configs/default.yaml")
    if path is None:
        raise DinogenError("configs/default.yaml is not bundled with this dinogen")
    return path


def size_configs(batch_size: str | None = None) -> dict[str, Config]:
    """The two model sizes, built on configs/default.yaml as it is now (it may change between runs).

    `batch_size` (a number or auto) replaces the default size's; makemore's size keeps makemore's batch.
    """
    default = load_config(default_config_path(), [f"train.batch_size={batch_size}"] if batch_size else [])
    makemore = copy.deepcopy(default)
    makemore.model = dataclasses.replace(default.model, **MAKEMORE_MODEL)
    makemore.train = dataclasses.replace(default.train, batch_size=MAKEMORE_BATCH_SIZE)
    return {"default": default, "makemore": makemore}


def training_config(base: Config, cell: str, corpus: Path, device: torch.device, precision: str, steps: int) -> Config:
    """`base` for one benchmark row: `steps` optimizer steps on `corpus`, no evaluation until the last step."""
    raw = base.to_dict()
    raw["model"]["cell"] = cell
    raw["data"]["path"] = str(corpus)
    raw["train"].update(
        epochs=None,
        max_steps=steps,
        max_time=None,
        eval_every=steps + 1,
        patience=None,
        device=str(device),
        precision=precision,
    )
    return Config.from_dict(raw)  # validates


def find_corpora(args: argparse.Namespace) -> dict[str, Path]:
    """The names files to train on: the bundled dinosaurs and --names (skipped with a warning if absent)."""
    found = {"dinos": bundled_file("data/dinos.txt")}
    names = Path(args.names)
    if names.is_file():
        found[names.stem] = names
    else:
        log(f"warning: --names {names} does not exist; training rows use data/dinos.txt only")
    return found


# ---------------------------------------------------------------------------------------------------------
# Training loop, padding and the layer alone


class StepClock:
    """An on_step callback that marks the end of every optimizer step.

    On CUDA it records events instead of reading the clock, so timing adds no synchronisation per step.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def __call__(self, step: int) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self, first: int, last: int) -> float:
        """Seconds between the ends of steps `first` and `last` (1-based step numbers)."""
        if self.cuda:
            self.marks[last - 1].synchronize()
            return self.marks[first - 1].elapsed_time(self.marks[last - 1]) / 1000
        return self.marks[last - 1] - self.marks[first - 1]


def plan_shapes(data: EncodedNames, plan: list[torch.Tensor]) -> list[tuple[int, int, int]]:
    """(rows, width, real characters) of each batch of a plan; a batch is as wide as its longest name."""
    shapes = []
    for rows in plan:
        lengths = data.lengths[rows]
        shapes.append((len(rows), int(lengths.max()), int(lengths.sum())))
    return shapes


def trained_shapes(data: EncodedNames, batch_size: int, seed: int, steps: int) -> list[tuple[int, int, int]]:
    """Shapes of the first `steps` batches Trainer.fit trains on: epoch e follows batch_plan(seed + e)."""
    shapes: list[tuple[int, int, int]] = []
    epoch = 0
    while len(shapes) < steps:
        shapes += plan_shapes(data, data.batch_plan(batch_size, seed=seed + epoch))
        epoch += 1
    return shapes[:steps]


def padding_stats(shapes: list[tuple[int, int, int]]) -> dict[str, float]:
    """Share of padded positions (1 - real / rows x width) over a list of batch shapes."""
    shares = sorted(1 - real / (rows * width) for rows, width, real in shapes)
    real = sum(s[2] for s in shapes)
    padded = sum(rows * width for rows, width, _ in shapes)
    return {
        "batches": len(shapes),
        "pad_share": 1 - real / padded,
        "pad_share_mean": sum(shares) / len(shares),
        "pad_share_median": median(shares),
        "pad_share_p90": shares[min(len(shares) - 1, int(0.9 * len(shares)))],
        "mean_width": sum(width for _, width, _ in shapes) / len(shapes),
        "max_width": max(width for _, width, _ in shapes),
    }


def measure_training(config: Config, settings: Settings) -> tuple[Run, dict[str, float]]:
    """Time Trainer.fit over warm-up + repeats x steps steps; one figure per window of `steps` steps."""
    with tempfile.TemporaryDirectory(prefix="dinogen-speed-run-") as run_dir:
        run = Run(config, run_dir)  # reads and encodes the data, builds model and Trainer; writes nothing
    trainer = run.trainer
    trainer.val_set = None  # Trainer.fit evaluates after its last step, after the timing: skip the validation pass
    total = settings.warmup_steps + settings.repeats * settings.steps
    clock = StepClock(run.device)
    reason = trainer.fit(on_step=clock)  # Trainer.fit itself: run.fit would also save checkpoints
    if trainer.step != total:
        raise RuntimeError(f"training stopped after {trainer.step} of {total} steps ({reason})")
    shapes = trained_shapes(trainer.train_set, trainer.config.batch_size, config.train.seed, total)
    windows = []
    for k in range(settings.repeats):
        first = settings.warmup_steps + k * settings.steps  # the window runs from the end of this step
        last = first + settings.steps
        seconds = clock.seconds(first, last)
        window = shapes[first:last]  # shapes[i] is the batch of step i + 1
        windows.append(
            {
                "seconds": seconds,
                "chars_per_s": sum(s[2] for s in window) / seconds,
                "padded_per_s": sum(s[0] * s[1] for s in window) / seconds,
            }
        )
    step_times = [clock.seconds(step - 1, step) for step in range(settings.warmup_steps + 1, total + 1)]
    mean_step = sum(w["seconds"] for w in windows) / (settings.repeats * settings.steps)
    figures = {
        "chars_per_s": median([w["chars_per_s"] for w in windows]),
        "padded_per_s": median([w["padded_per_s"] for w in windows]),
        "median_step_ms": 1000 * median(step_times),
        "epoch_s": trainer.steps_per_epoch * mean_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "timed_steps": settings.repeats * settings.steps,
        "warmup_steps": settings.warmup_steps,
        "train_names": len(trainer.train_set),
        "parameters": run.model.num_parameters(),
    }
    return run, figures


def measure_layer(
    config: Config, batch_size: int, width: int, device: torch.device, precision: str, settings: Settings
) -> float:
    """Padded positions/s of the recurrent layer alone, forward + backward on random input."""
    layer = CharRNN(2, config.model).rnn.to(device).train()  # the nn.RNN/GRU/LSTM exactly as the model builds it
    inputs = torch.randn(batch_size, width, config.model.embedding_dim, device=device, requires_grad=True)
    autocast = torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32")

    def one_pass() -> None:
        with autocast:
            out, _ = layer(inputs)
        out.float().sum().backward()
        layer.zero_grad(set_to_none=True)
        inputs.grad = None

    def passes() -> None:
        for _ in range(settings.layer_iters):
            one_pass()

    for _ in range(settings.layer_warmup):
        one_pass()
    seconds = [timed(passes, device) for _ in range(settings.repeats)]
    return batch_size * width * settings.layer_iters / median(seconds)


def benchmark_training(args, corpora: dict[str, Path], settings: Settings, device: torch.device) -> dict:
    """The training, padding and layer-alone tables, for every corpus, size and cell."""
    sizes = size_configs(args.batch_size)  # read once, so every row of this run uses the same default.yaml
    results: dict = {"training": [], "padding": [], "layer": []}
    results["sizes"] = {
        size: {"model": dataclasses.asdict(c.model), "batch_size": c.train.batch_size} for size, c in sizes.items()
    }
    for spec in results["sizes"].values():
        del spec["model"]["cell"]  # every size runs each cell
    results["sizes"]["default"]["source"] = str(default_config_path())
    total_steps = settings.warmup_steps + settings.repeats * settings.steps
    for corpus, path in corpora.items():
        padding_done: set[int] = set()
        for size, base in sizes.items():
            for cell in CELLS:
                log(f"training: {corpus} {size} {cell} ...")
                config = training_config(base, cell, path, device, args.precision, total_steps)
                run, figures = measure_training(config, settings)
                batch_size = run.trainer.config.batch_size  # what train.batch_size auto chose for the device
                data = run.trainer.train_set
                stats = padding_stats(plan_shapes(data, data.batch_plan(batch_size, seed=config.train.seed)))
                row = {"corpus": corpus, "size": size, "cell": cell, "batch_size": batch_size}
                row |= {"embedding_dim": config.model.embedding_dim, "hidden_size": config.model.hidden_size}
                row |= {"num_layers": config.model.num_layers, "precision": args.precision}
                results["training"].append(row | figures)
                if batch_size not in padding_done:
                    padding_done.add(batch_size)
                    results["padding"].append({"corpus": corpus, "batch_size": batch_size} | stats)
                width = max(1, round(stats["mean_width"]))
                layer = measure_layer(config, batch_size, width, device, args.precision, settings)
                results["layer"].append(
                    row
                    | {
                        "width": width,
                        "layer_padded_per_s": layer,
                        "loop_padded_per_s": figures["padded_per_s"],
                        "loop_over_layer": figures["padded_per_s"] / layer,
                    }
                )
    return results


def print_training(results: dict) -> None:
    print_table(
        "Training throughput: Trainer.fit, medians over timed windows",
        [
            "corpus",
            "size",
            "cell",
            "E/H/L",
            "batch",
            "params",
            "real chars/s",
            "padded pos/s",
            "step ms",
            "epoch s (est.)",
            "batches/epoch",
        ],
        [
            [
                r["corpus"],
                r["size"],
                r["cell"],
                f"{r['embedding_dim']}/{r['hidden_size']}/{r['num_layers']}",
                str(r["batch_size"]),
                fmt_int(r["parameters"]),
                fmt_int(r["chars_per_s"]),
                fmt_int(r["padded_per_s"]),
                fmt_float(r["median_step_ms"]),
                fmt_float(r["epoch_s"]),
                fmt_int(r["steps_per_epoch"]),
            ]
            for r in results["training"]
        ],
        [
            "real chars: name characters + one end token per name (padding not counted); padded: rows x batch width",
            "epoch s (est.): batches per epoch x mean step time of the timed windows",
            *(_size_note(size, spec) for size, spec in results["sizes"].items()),
        ],
    )
    print_table(
        "Padding: share of padded positions per batch, epoch 0 batch plan",
        ["corpus", "batch", "batches", "overall", "mean", "median", "p90", "mean width", "max width"],
        [
            [
                r["corpus"],
                str(r["batch_size"]),
                fmt_int(r["batches"]),
                fmt_pct(r["pad_share"]),
                fmt_pct(r["pad_share_mean"]),
                fmt_pct(r["pad_share_median"]),
                fmt_pct(r["pad_share_p90"]),
                fmt_float(r["mean_width"], 1),
                str(r["max_width"]),
            ]
            for r in results["padding"]
        ],
        ["share = 1 - real characters / (rows x width); overall = over all positions of the epoch"],
    )
    print_table(
        "Recurrent layer alone vs the training loop (padded positions/s)",
        ["corpus", "size", "cell", "batch x width", "layer fwd+bwd", "training loop", "loop/layer", "target"],
        [
            [
                r["corpus"],
                r["size"],
                r["cell"],
                f"{r['batch_size']} x {r['width']}",
                fmt_int(r["layer_padded_per_s"]),
                fmt_int(r["loop_padded_per_s"]),
                fmt_pct(r["loop_over_layer"]),
                _target_mark(r),
            ]
            for r in results["layer"]
        ],
        [
            f"layer: the model's nn.RNN/GRU/LSTM on random (batch, mean width, embedding) input; "
            f"target loop/layer >= {LAYER_TARGET:.0%} at the default size"
        ],
    )


def _size_note(size: str, spec: dict) -> str:
    model = spec["model"]
    source = f" (from {spec['source']})" if "source" in spec else ""
    return (
        f"{size}{source}: embedding {model['embedding_dim']}, hidden {model['hidden_size']}, "
        f"{model['num_layers']} layer(s), dropout {model['dropout']:g}, batch {spec['batch_size']}"
        f"{' (the rows say what it chose)' if spec['batch_size'] == 'auto' else ''}"
    )


def _target_mark(row: dict) -> str:
    if row["size"] != "default":
        return "-"
    return "met" if row["loop_over_layer"] >= LAYER_TARGET else "MISSED"


# ---------------------------------------------------------------------------------------------------------
# Checkpoint and sampling


def prepare_checkpoint(args, settings: Settings, device: torch.device, workdir: Path) -> tuple[Path, str]:
    """The checkpoint to sample from: --checkpoint, or a short `dinogen train` run in `workdir`."""
    if args.checkpoint:
        path = Path(args.checkpoint).resolve()
        if not path.exists():
            raise DinogenError(f"--checkpoint {path} does not exist")
        return path, f"given: {path}"
    out = workdir / "sample-model"
    command = [*dinogen_command(), "train", "-q", "-c", str(default_config_path()), "-o", str(out)]
    command += ["--device", str(device)]
    command += ["--set", f"train.epochs={settings.checkpoint_epochs}"]
    log(f"checkpoint: {' '.join(command[1:])} ...")
    run_child_checked(command, cwd=workdir)  # in workdir, the config's data/dinos.txt is the bundled file
    how = f"trained for this benchmark: dinogen train --set train.epochs={settings.checkpoint_epochs}"
    return out, f"{how} (configs/default.yaml, bundled dinos)"


def benchmark_sampling(checkpoint: Path, settings: Settings, device: torch.device) -> dict:
    """Generator names/s per batch size, the time for sample_n names, and the --unique --novel cost."""
    generator = Generator.from_checkpoint(checkpoint, device=str(device))
    generator.sample(256, seed=0)  # warm-up

    def seconds(n: int, **options) -> tuple[float, int]:
        """Median seconds to sample `n` names; and how many were found (fewer if the filters ran dry)."""
        found = n

        def call(seed: int) -> None:
            nonlocal found
            try:
                generator.sample(n, seed=seed, **options)
            except NotEnoughNames as err:
                found = err.found

        times = [timed(functools.partial(call, repeat), device) for repeat in range(settings.repeats)]
        return median(times), found

    throughput = []
    for batch_size in settings.sample_batch_sizes:
        n = max(batch_size, settings.sample_min_names)
        log(f"sampling: {n:,} names at batch size {batch_size:,} ...")
        t, _ = seconds(n, batch_size=batch_size)
        throughput.append({"batch_size": batch_size, "names": n, "seconds": t, "names_per_s": n / t})
    log(f"sampling: {settings.sample_n:,} names at the default batch size ...")
    t_default, _ = seconds(settings.sample_n)
    filtered = []
    for n in settings.filter_ns:
        log(f"sampling: {n:,} names plain and with unique + novel ...")
        plain, _ = seconds(n)
        strict, found = seconds(n, unique=True, novel=True)
        filtered.append({"n": n, "plain_s": plain, "unique_novel_s": strict, "ratio": strict / plain, "found": found})
    log(f"sampling: {settings.sample_n:,} names with --min-length 6 --max-length 12 ...")
    t_lengths, _ = seconds(settings.sample_n, min_length=6, max_length=12)
    drawn = generator.sample(settings.sample_n, seed=0)
    in_range = sum(6 <= len(name) <= 12 for name in drawn) / len(drawn)
    most_likely = []
    for n in settings.most_likely_ns:
        log(f"sampling: the {n:,} most likely names ...")
        times = [timed(functools.partial(generator.most_likely, n), device) for _ in range(settings.repeats)]
        most_likely.append({"n": n, "seconds": median(times)})
    return {
        "throughput": throughput,
        "default_batch_size": generator.default_batch_size,
        "sample_n": settings.sample_n,
        "sample_n_seconds": t_default,
        "unique_novel": filtered,
        "lengths_6_12_seconds": t_lengths,
        "plain_share_in_6_12": in_range,
        "most_likely": most_likely,
    }


def print_sampling(results: dict, source: str) -> None:
    print_table(
        "Sampling throughput: Generator.sample, temperature 1.0",
        ["batch size", "names", "seconds", "names/s"],
        [
            [fmt_int(r["batch_size"]), fmt_int(r["names"]), fmt_float(r["seconds"], 3), fmt_int(r["names_per_s"])]
            for r in results["throughput"]
        ],
        [f"checkpoint: {source}"],
    )
    print_table(
        "Sampling: fixed N and the cost of --unique --novel",
        ["measure", "N", "seconds", "ratio"],
        [["plain, default batch size", fmt_int(results["sample_n"]), fmt_float(results["sample_n_seconds"], 3), "-"]]
        + [
            [
                "plain vs unique+novel" + _shortfall(r),
                fmt_int(r["n"]),
                f"{r['plain_s']:.3f} / {r['unique_novel_s']:.3f}",
                f"{r['ratio']:.2f}x",
            ]
            for r in results["unique_novel"]
        ],
        [f"default batch size {results['default_batch_size']:,}; ratio = unique+novel time / plain time"],
    )
    ratio = results["lengths_6_12_seconds"] / results["sample_n_seconds"]
    print_table(
        "Sampling: a length range and the most likely names",
        ["measure", "N", "seconds", "note"],
        [
            [
                "--min-length 6 --max-length 12",
                fmt_int(results["sample_n"]),
                fmt_float(results["lengths_6_12_seconds"], 3),
                f"{ratio:.2f}x plain; {results['plain_share_in_6_12']:.0%} of plain samples are 6-12 long",
            ]
        ]
        + [
            ["--most-likely", fmt_int(r["n"]), fmt_float(r["seconds"], 3), "exact best-first search"]
            for r in results["most_likely"]
        ],
        ["lengths: names that run past 12 characters are drawn in full and dropped; the end is masked below 6"],
    )


def _shortfall(row: dict) -> str:
    return "" if row["found"] == row["n"] else f" (filters found only {row['found']:,})"


# ---------------------------------------------------------------------------------------------------------
# Child processes: peak memory and start-up


def benchmark_memory(
    args, corpora: dict[str, Path], checkpoint: Path, settings: Settings, device: torch.device, workdir: Path
) -> list[dict]:
    """Peak RSS of `dinogen train` (per corpus) and `dinogen sample` at two N, median over repeats."""
    cli = dinogen_command()
    steps = settings.memory_train_steps
    commands = []
    for corpus, path in corpora.items():
        train = [*cli, "train", "-q", "-c", str(default_config_path()), "--data", str(path)]
        train += ["--overwrite", "-o", str(workdir / f"mem-{corpus}")]
        train += ["--device", str(device), "--set", f"train.max_steps={steps}"]
        train += ["--set", f"train.precision={args.precision}"]
        commands.append((f"dinogen train ({corpus}, {steps} steps)", "train", None, train))
    for n in settings.memory_sample_ns:
        sample = [*cli, "sample", str(checkpoint), "-n", str(n), "-o", str(workdir / "sampled.txt")]
        commands.append((f"dinogen sample -n {n:,} -o FILE", "sample", n, sample + ["--device", str(device)]))
    rows = []
    for label, kind, n, command in commands:
        log(f"memory: {label} ...")
        runs = [run_child_checked(command, cwd=workdir) for _ in range(settings.child_repeats)]
        rss = median([r.max_rss_bytes for r in runs])
        rows.append(
            {
                "command": label,
                "kind": kind,
                "n": n,
                "peak_rss_mb": rss / MB,
                "wall_s": median([r.seconds for r in runs]),
            }
        )
    return rows


def print_memory(rows: list[dict]) -> None:
    samples = [r for r in rows if r["kind"] == "sample"]
    notes = ["peak RSS: ru_maxrss of the child process (os.wait4), median over repeats"]
    if len(samples) == 2:
        small, large = samples
        extra = large["peak_rss_mb"] - small["peak_rss_mb"]
        if (small["n"], large["n"]) == (10_000, 1_000_000):
            verdict = "met" if extra * MB <= MEMORY_TARGET_BYTES else "MISSED"
        else:
            verdict = "not judged: the target compares -n 1,000,000 with -n 10,000"
        notes.append(
            f"-n {large['n']:,} uses {extra:+.1f} MB over -n {small['n']:,} "
            f"(target: within {MEMORY_TARGET_BYTES / MB:.0f} MB): {verdict}"
        )
    print_table(
        "Peak resident memory of CLI runs",
        ["command", "peak RSS MB", "wall s"],
        [[r["command"], fmt_float(r["peak_rss_mb"], 1), fmt_float(r["wall_s"])] for r in rows],
        notes,
    )


def benchmark_startup(checkpoint: Path, settings: Settings, device: torch.device, workdir: Path) -> list[dict]:
    """Wall time of `dinogen --help` and of `dinogen sample CHECKPOINT -n 1`."""
    cli = dinogen_command()
    commands = [
        ("dinogen --help", [*cli, "--help"]),
        ("dinogen sample CHECKPOINT -n 1", [*cli, "sample", str(checkpoint), "-n", "1", "--device", str(device)]),
    ]
    rows = []
    for label, command in commands:
        log(f"startup: {label} ...")
        runs = [run_child_checked(command, cwd=workdir) for _ in range(settings.child_repeats)]
        seconds = [r.seconds for r in runs]
        rows.append({"command": label, "median_s": median(seconds), "min_s": min(seconds), "runs": len(runs)})
    return rows


def print_startup(rows: list[dict]) -> None:
    print_table(
        "Start-up wall time of the CLI",
        ["command", "median s", "min s", "runs"],
        [[r["command"], fmt_float(r["median_s"], 3), fmt_float(r["min_s"], 3), str(r["runs"])] for r in rows],
    )


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


def benchmark_ddp(args, settings: Settings, device: torch.device, workdir: Path) -> list[dict]:
    """configs/names.yaml on --names for a fixed number of steps: one process (torch's threads, then one
    thread, as torchrun gives each rank), then --ddp-ranks under torchrun."""
    rows = []
    for processes, threads in [(1, "torch's default"), (1, "1"), (args.ddp_ranks, "1 per rank")]:
        run_dir = workdir / f"ddp-{processes}"
        command = names_training(args, device, run_dir, settings.ddp_steps, processes)
        if threads == "1":
            command = ["env", "OMP_NUM_THREADS=1", *command]
        log(f"ddp: {processes} process(es), threads {threads} x {settings.child_repeats} ...")
        rows.append(
            {"processes": processes, "threads": threads} | trained_figures(command, run_dir, settings.child_repeats)
        )
    return rows


# The environment each row of the busy-machine table runs `dinogen train` under. "dinogen" is the CLI's
# own choice (as many threads as cores stay idle); the others pin torch's threads to every core and vary
# how OpenMP threads wait for each other (libgomp's default spins 300,000 times, then sleeps).
CORES = str(len(os.sched_getaffinity(0)))
THREAD_SETTINGS = {
    "dinogen (threads = idle cores)": {},
    f"{CORES} threads, torch's default": {"OMP_NUM_THREADS": CORES},
    f"{CORES} threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": CORES, "OMP_WAIT_POLICY": "PASSIVE"},
    f"{CORES} threads, GOMP_SPINCOUNT=10000": {"OMP_NUM_THREADS": CORES, "GOMP_SPINCOUNT": "10000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def benchmark_busy(args, settings: Settings, device: torch.device, workdir: Path) -> list[dict]:
    """Training steps/s of configs/names.yaml on a quiet machine and beside one busy process, per thread setting.

    The busy process is a Python loop that keeps one core at 100% for the whole measurement, like a
    browser tab or another job on a shared machine.
    """
    rows = []
    run_dir = workdir / "busy"
    for label, variables in THREAD_SETTINGS.items():
        command = ["env", *(f"{key}={value}" for key, value in variables.items())]
        # at most busy_seconds: a badly shared CPU can make 200 steps take many minutes
        command += names_training(args, device, run_dir, settings.busy_steps, max_time=settings.busy_seconds)
        row = {"setting": label}
        for load in ("quiet", "busy"):
            log(f"busy: {label}, {load} machine x {settings.child_repeats} ...")
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
            try:
                row[load] = trained_figures(command, run_dir, settings.child_repeats)["steps_per_s"]
            finally:
                if spinner:
                    spinner.kill()
                    spinner.wait()
        rows.append(row)
    return rows


def print_busy(rows: list[dict], steps: int) -> None:
    quiet = rows[0]["quiet"]
    print_table(
        f"Training beside a busy process: configs/names.yaml, {steps} steps",
        ["threads", "quiet steps/s", "busy steps/s", "busy / quiet", "quiet vs dinogen's"],
        [
            [r["setting"], fmt_float(r["quiet"]), fmt_float(r["busy"]), f"{r['busy'] / r['quiet']:.0%}",
             f"{r['quiet'] / quiet:.2f}x"]
            for r in rows
        ],  # fmt: skip
        ["busy: one other process keeps a core at 100% (a Python loop)",
         "targets: dinogen's busy steps/s >= 40% of its quiet ones, its quiet ones within 5% of the best"],
    )  # fmt: skip


def print_ddp(rows: list[dict], steps: int) -> None:
    one = rows[0]["steps_per_s"]
    print_table(
        f"Training on more than one process: configs/names.yaml, {steps} steps, the same global batch",
        ["processes", "threads", "steps/s", "vs 1", "wall s", "train loss", "val loss"],
        [
            [
                str(r["processes"]),
                r["threads"],
                fmt_float(r["steps_per_s"]),
                f"{r['steps_per_s'] / one:.2f}x",
                fmt_float(r["wall_s"], 1),
                fmt_float(r["train_loss"], 4),
                fmt_float(r["val_loss"], 4),
            ]
            for r in rows
        ],
        ["steps/s: training time only (metrics.jsonl elapsed); wall s: the whole command, start-up included",
         "vs 1: over the first row; torchrun gives each rank OMP_NUM_THREADS=1 unless it is set"],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Driver


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto [default: cpu]")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="training rows [fp32]")
    parser.add_argument(
        "--batch-size", help="training rows at the default size: a number or auto [default: the config's, auto]"
    )
    parser.add_argument("--repeats", type=int, default=5, help="measurements per figure; medians reported [5]")
    parser.add_argument("--quick", action="store_true", help="few steps, repeats and names: a smoke test")
    parser.add_argument(
        "--names",
        default=str(REPO.parent / "shared" / "data" / "names.txt"),
        help="second names file for the training rows [default: ../shared/data/names.txt from the repo root]",
    )
    parser.add_argument("--checkpoint", help="checkpoint or run directory to sample from [default: train one]")
    parser.add_argument("--ddp-ranks", type=int, default=2, help="processes of the torchrun row [2]")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    for part in ("train", "ddp", "busy", "sample", "memory", "startup"):
        parser.add_argument(f"--skip-{part}", action="store_true", help=f"skip the {part} measurements")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def print_header(env: dict, args: argparse.Namespace, settings: Settings) -> None:
    print("dinogen speed benchmark")
    for key, value in env.items():
        print(f"  {key:<18} {value}")
    mode = "QUICK (smoke test: too few steps for trustworthy figures)" if args.quick else "full"
    print(f"  {'mode':<18} {mode}; repeats {settings.repeats}; precision {args.precision} (training rows)")
    print(f"  {'training steps':<18} {settings.warmup_steps} warm-up + {settings.repeats} x {settings.steps} timed")


def timed_part(name: str, measure: Callable[[], object]) -> object:
    """Run one part of the benchmark and report on stderr how long it took."""
    start = time.perf_counter()
    figures = measure()
    log(f"{name}: done in {time.perf_counter() - start:.1f} s")
    return figures


def run_parts(args, settings: Settings, device: torch.device, results: dict, workdir: Path) -> None:
    """Measure and print each part not skipped, storing its figures in `results`."""
    corpora = find_corpora(args) if not (args.skip_train and args.skip_memory) else {}
    if not args.skip_train:
        results |= timed_part("training", lambda: benchmark_training(args, corpora, settings, device))
        print_training(results)
    if not args.skip_ddp:
        results["ddp"] = timed_part("ddp", lambda: benchmark_ddp(args, settings, device, workdir))
        print_ddp(results["ddp"], settings.ddp_steps)
    if not args.skip_busy:
        results["busy"] = timed_part("busy", lambda: benchmark_busy(args, settings, device, workdir))
        print_busy(results["busy"], settings.busy_steps)
    if args.skip_sample and args.skip_memory and args.skip_startup:
        return
    checkpoint, source = prepare_checkpoint(args, settings, device, workdir)
    results["checkpoint"] = source
    if not args.skip_sample:
        results["sampling"] = timed_part("sampling", lambda: benchmark_sampling(checkpoint, settings, device))
        print_sampling(results["sampling"], source)
    if not args.skip_memory:
        results["memory"] = timed_part(
            "memory", lambda: benchmark_memory(args, corpora, checkpoint, settings, device, workdir)
        )
        print_memory(results["memory"])
    if not args.skip_startup:
        results["startup"] = timed_part("startup", lambda: benchmark_startup(checkpoint, settings, device, workdir))
        print_startup(results["startup"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
    except DinogenError as err:
        print(f"speed.py: error: {err}", file=sys.stderr)
        return 2
    settings = settings_for(args)
    env = environment(device)
    print_header(env, args, settings)
    results: dict[str, object] = {
        "environment": env,
        "settings": dataclasses.asdict(settings) | {"quick": args.quick, "precision": args.precision},
    }
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="dinogen-speed-") as workdir:
            run_parts(args, settings, device, results, Path(workdir))
    except (DinogenError, RuntimeError) as err:
        print(f"speed.py: error: {err}", file=sys.stderr)
        return 1
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {results['total_seconds']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
