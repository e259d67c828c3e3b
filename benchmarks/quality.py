"""Test loss against wall time on a larger corpus: how good do the names get per minute of training?

Trains dinogen's real Run/Trainer on ../shared/data/names.txt (32,033 first names) with a fixed
held-out test set of 1,000 names chosen by the seed (never seen in training or validation), and
prints the test loss (nats per character, end tokens included) at every evaluation against the
seconds of training so far, then the test loss of best.pt (lowest validation loss). The budget sets
train.max_time; the config's own train.epochs still applies, so a fast machine stops at the epoch limit.

    python benchmarks/quality.py                       # configs/names.yaml, 60 s budget
    python benchmarks/quality.py --budget 600 --set model.hidden_size=512 --json quality.json
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from dinogen.bundled import bundled_file
from dinogen.checkpoint import load_checkpoint
from dinogen.config import load_config
from dinogen.data import EncodedNames, read_names
from dinogen.run import Run
from dinogen.train import mean_loss

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NAMES = REPO.parent / "shared" / "data" / "names.txt"


def split_test(names: list[str], size: int, seed: int) -> tuple[list[str], list[str]]:
    """Hold out `size` names chosen by `seed`: (rest, test)."""
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    test = {names[i] for i in order[:size]}
    return [n for n in names if n not in test], [names[i] for i in order[:size]]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(bundled_file("configs/names.yaml")), help="YAML config")
    parser.add_argument("--names", default=str(DEFAULT_NAMES), help="names corpus (default: ../shared/data/names.txt)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training (train.max_time)")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; medians reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", help="train.batch_size: a number or auto [default: the config's]")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()

    print(f"# dinogen quality benchmark: {Path(args.names).name}, {args.test_size} held-out test names")
    machine = platform.processor() or platform.machine()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, {machine}")
    print(f"# config {args.config} {' '.join(args.set)}; budget {args.budget:g} s of training")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            result = run_once(args, seed, Path(tmp))
            results.append(result)
            print(
                f"\nseed {seed}: {result['parameters']:,} parameters, {result['precision']}, "
                f"batch {result['batch_size']:,}, lr {result['lr']:.4g}"
            )
            print(f"{'seconds':>8} {'step':>7} {'val loss':>9} {'test loss':>10}")
            for point in result["curve"]:
                print(f"{point['elapsed']:8.1f} {point['step']:7d} {point['val_loss']:9.4f} {point['test_loss']:10.4f}")
            print(
                f"best.pt (step {result['best_checkpoint_step']}): test loss {result['best_checkpoint_test_loss']:.4f}"
            )
    summary = {
        "median_best_checkpoint_test_loss": statistics.median(r["best_checkpoint_test_loss"] for r in results),
        "median_final_test_loss": statistics.median(r["final_test_loss"] for r in results),
        "median_training_seconds": statistics.median(r["training_seconds"] for r in results),
    }
    print(
        f"\nmedian over {len(results)} seed(s): test loss of best.pt {summary['median_best_checkpoint_test_loss']:.4f} "
        f"nats/char after {summary['median_training_seconds']:.1f} s of training"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "summary": summary, "runs": results}, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
