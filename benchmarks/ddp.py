"""Training on more than one process: `dinogen train` in one process against torchrun with N ranks.

configs/names.yaml on --names for 200 optimizer steps, one evaluation at the end, the same global
batch in every row: one process with torch's threads, one process with one thread (OMP_NUM_THREADS=1,
as torchrun gives each rank), then `torchrun --nproc-per-node N -m dinogen train` (--ranks, the batch
shared by N ranks over gloo or NCCL). Reported: optimizer steps per second of training time
(metrics.jsonl's elapsed: start-up and validation excluded), wall time of the whole command, and the
train and validation losses at the last step; medians over --repeats runs.

    python benchmarks/ddp.py --json ddp.json
    python benchmarks/ddp.py --precision bf16 --ranks 2
    python benchmarks/ddp.py --quick              # smoke test: figures not meaningful
"""

import sys

import _common as bench
from _children import names_training, trained_figures
from _output import fmt_float, log, print_table

FULL = {"steps": 200}
QUICK = {"steps": 5, "repeats": 1}


def measure(args, device, workdir) -> dict:
    """One process (torch's threads, then one thread), then --ranks processes under torchrun."""
    work = bench.amounts(args, FULL, QUICK)
    rows = []
    for processes, threads in [(1, "torch's default"), (1, "1"), (args.ranks, "1 per rank")]:
        run_dir = workdir / f"ddp-{processes}"
        command = names_training(args, device, run_dir, work.steps, processes)
        if threads == "1":
            command = ["env", "OMP_NUM_THREADS=1", *command]
        log(f"ddp: {processes} process(es), threads {threads} x {work.repeats} ...")
        figures = trained_figures(command, run_dir, work.repeats)
        rows.append({"processes": processes, "threads": threads} | figures)
    return {"settings": vars(work), "rows": rows}


def report(results: dict) -> None:
    rows = results["rows"]
    one = rows[0]["steps_per_s"]
    print_table(
        f"Training on more than one process: configs/names.yaml, {results['settings']['steps']} steps, "
        "the same global batch",
        ["processes", "threads", "steps/s", "vs 1", "wall s", "train loss", "val loss"],
        [[str(r["processes"]), r["threads"], fmt_float(r["steps_per_s"]), f"{r['steps_per_s'] / one:.2f}x",
          fmt_float(r["wall_s"], 1), fmt_float(r["train_loss"], 4), fmt_float(r["val_loss"], 4)]
         for r in rows],
        ["steps/s: training time only (metrics.jsonl elapsed); wall s: the whole command, start-up included",
         "vs 1: over the first row; torchrun gives each rank OMP_NUM_THREADS=1 unless it is set"],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "precision", "repeats", "quick", "names")
    options.add_argument("--ranks", type=int, default=2, help="processes of the torchrun row [2]")
    return bench.run(options.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
