"""Test loss against wall time on a larger corpus: how good do the names get per minute of training?

Trains dinogen's real Run/Trainer on ../shared/data/names.txt (32,033 first names) with a fixed
held-out test set of 1,000 names chosen by the seed (never seen in training or validation), and
prints the test loss (nats per character, end tokens included) at every evaluation against the
seconds of training so far, then the test loss of best.pt (lowest validation loss). The budget sets
train.max_time; the config's own train.epochs still applies, so a fast machine stops at the epoch limit.

    python benchmarks/quality.py                       # configs/names.yaml, 60 s budget
    python benchmarks/quality.py --budget 600 --set model.hidden_size=512 --json quality.json
"""

import statistics
import sys
import time
from pathlib import Path

import _common as bench
from _inputs import split_test

from dinogen.bundled import bundled_file
from dinogen.checkpoint import load_checkpoint
from dinogen.config import load_config
from dinogen.data import EncodedNames, read_names
from dinogen.run import Run
from dinogen.train import mean_loss


def run_once(args, seed: int, workdir: Path) -> dict:
    names = read_names(args.names)
    rest, test = split_test(names, args.test_size, seed)
    train_file = workdir / f"train-{seed}.txt"
    train_file.write_text("\n".join(rest) + "\n", encoding="utf-8")
    overrides = [
        f"data.path={train_file}",
        f"train.max_time={args.budget}",  # the config's epoch limit stays: whichever comes first ends the run
        f"train.seed={seed}",
        f"train.device={args.device}",
        *([f"train.batch_size={args.batch_size}"] if args.batch_size else []),
        *args.set,
    ]
    config = load_config(args.config, overrides)
    run = Run(config, workdir / f"run-{seed}")
    run.prepare_dir(overwrite=True)
    test_set = EncodedNames(test, run.vocab, run.device)
    curve = []

    def on_evaluation(evaluation) -> None:
        curve.append(
            {
                "elapsed": evaluation.elapsed,
                "step": evaluation.step,
                "val_loss": evaluation.val_loss,
                "test_loss": mean_loss(run.model, test_set),
            }
        )

    start = time.perf_counter()
    run.fit(on_evaluation=on_evaluation)
    wall = time.perf_counter() - start
    best = load_checkpoint(run.run_dir / "best.pt", map_location=run.device)
    best_model = best.build_model(run.device)
    return {
        "seed": seed,
        "curve": curve,
        "final_test_loss": curve[-1]["test_loss"],
        "best_checkpoint_test_loss": mean_loss(best_model, test_set),
        "best_checkpoint_step": best.step,
        "training_seconds": run.trainer.elapsed,
        "wall_seconds": wall,
        "parameters": run.model.num_parameters(),
        "precision": run.trainer.precision,
        "batch_size": run.trainer.config.batch_size,
        "lr": run.trainer.config.lr,
        "config": config.to_dict(),
    }


def measure(args, device, workdir: Path) -> dict:
    """One training run per seed, then the medians over the seeds."""
    results = [run_once(args, seed, workdir) for seed in args.seeds]
    summary = {
        "median_best_checkpoint_test_loss": statistics.median(r["best_checkpoint_test_loss"] for r in results),
        "median_final_test_loss": statistics.median(r["final_test_loss"] for r in results),
        "median_training_seconds": statistics.median(r["training_seconds"] for r in results),
    }
    data = {"names": args.names, "test_size": args.test_size, "config": args.config, "overrides": args.set}
    return {"data": data | {"budget_s": args.budget}, "summary": summary, "runs": results}


def report(results: dict) -> None:
    data = results["data"]
    config = " ".join([data["config"], *data["overrides"]])
    print(f"\n{Path(data['names']).name}, {data['test_size']:,} held-out test names; config {config}; "
          f"budget {data['budget_s']:g} s of training")  # fmt: skip
    for result in results["runs"]:
        print(
            f"\nseed {result['seed']}: {result['parameters']:,} parameters, {result['precision']}, "
            f"batch {result['batch_size']:,}, lr {result['lr']:.4g}"
        )
        print(f"{'seconds':>8} {'step':>7} {'val loss':>9} {'test loss':>10}")
        for point in result["curve"]:
            print(f"{point['elapsed']:8.1f} {point['step']:7d} {point['val_loss']:9.4f} {point['test_loss']:10.4f}")
        print(f"best.pt (step {result['best_checkpoint_step']}): test loss {result['best_checkpoint_test_loss']:.4f}")
    summary = results["summary"]
    print(
        f"\nmedian over {len(results['runs'])} seed(s): test loss of best.pt "
        f"{summary['median_best_checkpoint_test_loss']:.4f} nats/char after "
        f"{summary['median_training_seconds']:.1f} s of training"
    )


def main(argv: list[str] | None = None) -> int:
    parser = bench.parser(__doc__, "device", "names", "batch-size")
    parser.add_argument("--config", default=str(bundled_file("configs/names.yaml")), help="YAML config")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training (train.max_time)")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; medians reported")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    return bench.run(parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
