"""Training speed: Trainer.fit's characters/s per cell and size, the batches' padding, the recurrent layer alone.

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

Every figure is the median of --repeats measurements. Tables go to stdout, progress to stderr. With
--against, each tree trains with its own configs/default.yaml.

    python benchmarks/train_speed.py --json train_speed.json
    python benchmarks/train_speed.py --quick      # smoke test: figures not meaningful
    python benchmarks/train_speed.py --device cuda --precision bf16 --batch-size auto
    python benchmarks/train_speed.py --against ../dinogen-before --cells gru --sizes makemore
"""

import copy
import dataclasses
import sys
import tempfile

import _common as bench
import torch
from _inputs import default_config_path, find_corpora
from _output import fmt_float, fmt_int, fmt_pct, log, print_table
from _timing import StepClock, median, timed

from dinogen.config import Config, load_config
from dinogen.data import EncodedNames
from dinogen.model import CharRNN
from dinogen.run import Run

CELLS = ("rnn", "gru", "lstm")
SIZES = ("default", "makemore")
MAKEMORE = {"embedding_dim": 64, "hidden_size": 64, "num_layers": 1, "dropout": 0.0}
MAKEMORE_BATCH_SIZE = 32
LAYER_TARGET = 0.40  # loop / layer-alone padded positions per second, at the default size
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FULL = {"warmup_steps": 20, "steps": 200, "layer_warmup": 5, "layer_iters": 20}  # steps: timed, per repeat
QUICK = {"warmup_steps": 2, "steps": 5, "layer_warmup": 2, "layer_iters": 3}


def size_configs(batch_size: str | None) -> dict[str, Config]:
    """The two model sizes, built on configs/default.yaml as it is now (read once, so every row uses the same).

    `batch_size` (a number or auto) replaces the default size's; makemore's size keeps makemore's batch.
    """
    default = load_config(default_config_path(), [f"train.batch_size={batch_size}"] if batch_size else [])
    makemore = copy.deepcopy(default)
    makemore.model = dataclasses.replace(default.model, **MAKEMORE)
    makemore.train = dataclasses.replace(default.train, batch_size=MAKEMORE_BATCH_SIZE)
    return {"default": default, "makemore": makemore}


def training_config(base: Config, cell: str, corpus, device, precision: str, steps: int) -> Config:
    """`base` for one row: `steps` optimizer steps on `corpus`, no evaluation until the last step."""
    raw = base.to_dict()
    raw["model"]["cell"] = cell
    raw["data"]["path"] = str(corpus)
    raw["train"].update(epochs=None, max_steps=steps, max_time=None, eval_every=steps + 1, patience=None,
                        device=str(device), precision=precision)  # fmt: skip
    return Config.from_dict(raw)  # validates


def plan_shapes(data: EncodedNames, plan: list[torch.Tensor]) -> list[tuple[int, int, int]]:
    """(rows, width, real characters) of each batch of a plan; a batch is as wide as its longest name."""
    return [(len(rows), int(data.lengths[rows].max()), int(data.lengths[rows].sum())) for rows in plan]


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


def measure_training(config: Config, work) -> tuple[Run, dict[str, float]]:
    """Time Trainer.fit over warm-up + repeats x steps steps; one figure per window of `steps` steps."""
    with tempfile.TemporaryDirectory(prefix="dinogen-speed-run-") as run_dir:
        run = Run(config, run_dir)  # reads and encodes the data, builds model and Trainer; writes nothing
    trainer = run.trainer
    trainer.val_set = None  # Trainer.fit evaluates after its last step, after the timing: skip the validation pass
    total = work.warmup_steps + work.repeats * work.steps
    clock = StepClock(run.device)
    reason = trainer.fit(on_step=clock)  # Trainer.fit itself: run.fit would also save checkpoints
    if trainer.step != total:
        raise RuntimeError(f"training stopped after {trainer.step} of {total} steps ({reason})")
    shapes = trained_shapes(trainer.train_set, trainer.config.batch_size, config.train.seed, total)
    windows = []
    for k in range(work.repeats):
        first = work.warmup_steps + k * work.steps  # the window runs from the end of this step
        seconds = clock.seconds(first, first + work.steps)
        window = shapes[first : first + work.steps]  # shapes[i] is the batch of step i + 1
        windows.append({"seconds": seconds, "chars_per_s": sum(s[2] for s in window) / seconds,
                        "padded_per_s": sum(s[0] * s[1] for s in window) / seconds})  # fmt: skip
    step_times = [clock.seconds(step - 1, step) for step in range(work.warmup_steps + 1, total + 1)]
    mean_step = sum(w["seconds"] for w in windows) / (work.repeats * work.steps)
    return run, {
        "chars_per_s": median([w["chars_per_s"] for w in windows]),
        "padded_per_s": median([w["padded_per_s"] for w in windows]),
        "median_step_ms": 1000 * median(step_times),
        "epoch_s": trainer.steps_per_epoch * mean_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "timed_steps": work.repeats * work.steps,
        "warmup_steps": work.warmup_steps,
        "train_names": len(trainer.train_set),
        "parameters": run.model.num_parameters(),
    }


def measure_layer(config: Config, batch_size: int, width: int, device, precision: str, work) -> float:
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
        for _ in range(work.layer_iters):
            one_pass()

    for _ in range(work.layer_warmup):
        one_pass()
    seconds = [timed(passes, device) for _ in range(work.repeats)]
    return batch_size * width * work.layer_iters / median(seconds)


def measure(args, device: torch.device, workdir) -> dict:
    """The training, padding and layer-alone rows, for every corpus, size and cell asked for."""
    work = bench.amounts(args, FULL, QUICK)
    sizes = {size: config for size, config in size_configs(args.batch_size).items() if size in args.sizes}
    results: dict = {"settings": vars(work), "training": [], "padding": [], "layer": [], "sizes": {}}
    for size, config in sizes.items():
        spec = {"model": dataclasses.asdict(config.model), "batch_size": config.train.batch_size}
        del spec["model"]["cell"]  # every size runs each cell
        results["sizes"][size] = spec | ({"source": str(default_config_path())} if size == "default" else {})
    total_steps = work.warmup_steps + work.repeats * work.steps
    for corpus, path in find_corpora(args).items():
        padding_done: set[int] = set()
        for size, base in sizes.items():
            for cell in args.cells:
                log(f"training: {corpus} {size} {cell} ...")
                config = training_config(base, cell, path, device, args.precision, total_steps)
                run, figures = measure_training(config, work)
                batch_size = run.trainer.config.batch_size  # what train.batch_size auto chose for the device
                data = run.trainer.train_set
                stats = padding_stats(plan_shapes(data, data.batch_plan(batch_size, seed=config.train.seed)))
                row = {"corpus": corpus, "size": size, "cell": cell, "batch_size": batch_size,
                       "embedding_dim": config.model.embedding_dim, "hidden_size": config.model.hidden_size,
                       "num_layers": config.model.num_layers, "precision": args.precision}  # fmt: skip
                results["training"].append(row | figures)
                if batch_size not in padding_done:
                    padding_done.add(batch_size)
                    results["padding"].append({"corpus": corpus, "batch_size": batch_size} | stats)
                width = max(1, round(stats["mean_width"]))
                layer = measure_layer(config, batch_size, width, device, args.precision, work)
                results["layer"].append(row | {"width": width, "layer_padded_per_s": layer,
                                               "loop_padded_per_s": figures["padded_per_s"],
                                               "loop_over_layer": figures["padded_per_s"] / layer})  # fmt: skip
    return results


def report(results: dict) -> None:
    print_table(
        "Training throughput: Trainer.fit, medians over timed windows",
        ["corpus", "size", "cell", "E/H/L", "batch", "params", "real chars/s", "padded pos/s", "step ms",
         "epoch s (est.)", "batches/epoch"],
        [[r["corpus"], r["size"], r["cell"], f"{r['embedding_dim']}/{r['hidden_size']}/{r['num_layers']}",
          str(r["batch_size"]), fmt_int(r["parameters"]), fmt_int(r["chars_per_s"]),
          fmt_int(r["padded_per_s"]), fmt_float(r["median_step_ms"]), fmt_float(r["epoch_s"]),
          fmt_int(r["steps_per_epoch"])]
         for r in results["training"]],
        ["real chars: name characters + one end token per name (padding not counted); padded: rows x batch width",
         "epoch s (est.): batches per epoch x mean step time of the timed windows",
         *(_size_note(size, spec) for size, spec in results["sizes"].items())],
    )  # fmt: skip
    print_table(
        "Padding: share of padded positions per batch, epoch 0 batch plan",
        ["corpus", "batch", "batches", "overall", "mean", "median", "p90", "mean width", "max width"],
        [[r["corpus"], str(r["batch_size"]), fmt_int(r["batches"]), fmt_pct(r["pad_share"]),
          fmt_pct(r["pad_share_mean"]), fmt_pct(r["pad_share_median"]), fmt_pct(r["pad_share_p90"]),
          fmt_float(r["mean_width"], 1), str(r["max_width"])]
         for r in results["padding"]],
        ["share = 1 - real characters / (rows x width); overall = over all positions of the epoch"],
    )  # fmt: skip
    print_table(
        "Recurrent layer alone vs the training loop (padded positions/s)",
        ["corpus", "size", "cell", "batch x width", "layer fwd+bwd", "training loop", "loop/layer", "target"],
        [[r["corpus"], r["size"], r["cell"], f"{r['batch_size']} x {r['width']}",
          fmt_int(r["layer_padded_per_s"]), fmt_int(r["loop_padded_per_s"]),
          fmt_pct(r["loop_over_layer"]), _target_mark(r)]
         for r in results["layer"]],
        [f"layer: the model's nn.RNN/GRU/LSTM on random (batch, mean width, embedding) input; "
         f"target loop/layer >= {LAYER_TARGET:.0%} at the default size"],
    )  # fmt: skip


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


def compare(results: dict) -> dict[str, tuple[float, str]]:
    """The figures --against sets side by side: each row's training and layer-alone speed."""
    figures = {}
    for kind, figure, label in (
        ("training", "chars_per_s", "real chars/s"),
        ("layer", "layer_padded_per_s", "layer pos/s"),
    ):
        for row in results[kind]:
            figures[f"{row['corpus']} {row['size']} {row['cell']}: {label}"] = (row[figure], "higher")
    return figures


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "precision", "batch-size", "repeats", "quick", "names", "against")
    options.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS), help="cells to train [all]")
    options.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES), help="model sizes [both]")
    return bench.run(options.parse_args(argv), measure, report, compare)


if __name__ == "__main__":
    sys.exit(main())
