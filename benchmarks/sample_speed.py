"""Sampling speed: dinogen.sample.Generator in this process, from one checkpoint.

With a checkpoint (--checkpoint, else `dinogen train -o <tmp>/sample-model --set train.epochs=3`):

  throughput  Generator names/s at batch sizes 256, 1024, 4096 and 10000 (at least 20,000 names each).
  fixed N     the time to sample 10,000 names at temperature 1.0 with the default batch size; and the
              cost of unique=True, novel=True (the CLI's --unique --novel) over plain sampling at
              N = 10,000 and 100,000.
  lengths     10,000 names with min_length=6, max_length=12, against plain sampling.
  most likely Generator.most_likely for N = 100 and 1,000.

Every figure is the median of --repeats timed calls after one warm-up call. Tables go to stdout,
progress to stderr. With --against, both trees sample from the same checkpoint.

    python benchmarks/sample_speed.py --json sample_speed.json
    python benchmarks/sample_speed.py --quick     # smoke test: figures not meaningful
    python benchmarks/sample_speed.py --device cuda --checkpoint checkpoints/default
    python benchmarks/sample_speed.py --against ../dinogen-before    # each tree trains its own model
"""

import functools
import sys

import _common as bench
from _output import fmt_float, fmt_int, log, print_table
from _timing import median, timed

import dinogen
from dinogen.sample import Generator

FULL = {
    "batch_sizes": (256, 1024, 4096, 10000),
    "min_names": 20_000,  # names per throughput measurement (at least two batches of the largest)
    "n": 10_000,  # "time to sample N names"
    "filter_ns": (10_000, 100_000),  # N for the --unique --novel cost ratio
    "most_likely_ns": (100, 1_000),  # `--most-likely -n N`
}
QUICK = {"batch_sizes": (256, 1024, 4096, 10000), "min_names": 0, "n": 1_000, "filter_ns": (1_000,),
         "most_likely_ns": (10,)}  # fmt: skip


def measure(args, device, workdir) -> dict:
    """Generator names/s per batch size, the time for n names, the --unique --novel and length costs."""
    work = bench.amounts(args, FULL, QUICK)
    generator = Generator.from_checkpoint(args.checkpoint, device=str(device))
    generator.sample(256, seed=0)  # warm-up

    def seconds(n: int, **options) -> tuple[float, int]:
        """Median seconds to sample `n` names; and how many were found (fewer if the filters ran dry)."""
        found = n

        def call(seed: int) -> None:
            nonlocal found
            try:
                generator.sample(n, seed=seed, **options)
            except dinogen.NotEnoughNames as err:
                found = err.found

        times = [timed(functools.partial(call, repeat), device) for repeat in range(work.repeats)]
        return median(times), found

    throughput = []
    for batch_size in work.batch_sizes:
        n = max(batch_size, work.min_names)
        log(f"sampling: {n:,} names at batch size {batch_size:,} ...")
        t, _ = seconds(n, batch_size=batch_size)
        throughput.append({"batch_size": batch_size, "names": n, "seconds": t, "names_per_s": n / t})
    log(f"sampling: {work.n:,} names at the default batch size ...")
    t_default, _ = seconds(work.n)
    filtered = []
    for n in work.filter_ns:
        log(f"sampling: {n:,} names plain and with unique + novel ...")
        plain, _ = seconds(n)
        strict, found = seconds(n, unique=True, novel=True)
        filtered.append({"n": n, "plain_s": plain, "unique_novel_s": strict, "ratio": strict / plain, "found": found})
    log(f"sampling: {work.n:,} names with --min-length 6 --max-length 12 ...")
    t_lengths, _ = seconds(work.n, min_length=6, max_length=12)
    drawn = generator.sample(work.n, seed=0)
    most_likely = []
    for n in work.most_likely_ns:
        log(f"sampling: the {n:,} most likely names ...")
        times = [timed(functools.partial(generator.most_likely, n), device) for _ in range(work.repeats)]
        most_likely.append({"n": n, "seconds": median(times)})
    return {
        "settings": vars(work),
        "checkpoint": args.checkpoint_source,
        "throughput": throughput,
        "default_batch_size": generator.default_batch_size,
        "sample_n": work.n,
        "sample_n_seconds": t_default,
        "unique_novel": filtered,
        "lengths_6_12_seconds": t_lengths,
        "plain_share_in_6_12": sum(6 <= len(name) <= 12 for name in drawn) / len(drawn),
        "most_likely": most_likely,
    }


def report(results: dict) -> None:
    n = results["sample_n"]
    print_table(
        "Sampling throughput: Generator.sample, temperature 1.0",
        ["batch size", "names", "seconds", "names/s"],
        [[fmt_int(r["batch_size"]), fmt_int(r["names"]), fmt_float(r["seconds"], 3),
          fmt_int(r["names_per_s"])] for r in results["throughput"]],
        [f"checkpoint: {results['checkpoint']}"],
    )  # fmt: skip
    print_table(
        "Sampling: fixed N and the cost of --unique --novel",
        ["measure", "N", "seconds", "ratio"],
        [["plain, default batch size", fmt_int(n), fmt_float(results["sample_n_seconds"], 3), "-"]]
        + [["plain vs unique+novel" + _shortfall(r), fmt_int(r["n"]),
            f"{r['plain_s']:.3f} / {r['unique_novel_s']:.3f}", f"{r['ratio']:.2f}x"] for r in results["unique_novel"]],
        [f"default batch size {results['default_batch_size']:,}; ratio = unique+novel time / plain time"],
    )  # fmt: skip
    ratio = results["lengths_6_12_seconds"] / results["sample_n_seconds"]
    share = results["plain_share_in_6_12"]
    print_table(
        "Sampling: a length range and the most likely names",
        ["measure", "N", "seconds", "note"],
        [["--min-length 6 --max-length 12", fmt_int(n), fmt_float(results["lengths_6_12_seconds"], 3),
          f"{ratio:.2f}x plain; {share:.0%} of plain samples are 6-12 long"]]
        + [["--most-likely", fmt_int(r["n"]), fmt_float(r["seconds"], 3), "exact best-first search"]
           for r in results["most_likely"]],
        ["lengths: names that run past 12 characters are drawn in full and dropped; the end is masked below 6"],
    )  # fmt: skip


def _shortfall(row: dict) -> str:
    return "" if row["found"] == row["n"] else f" (filters found only {row['found']:,})"


def compare(results: dict) -> dict[str, tuple[float, str]]:
    """The figures --against sets side by side: names/s per batch size and the seconds of each fixed task."""
    figures = {f"names/s at batch {r['batch_size']:,}": (r["names_per_s"], "higher") for r in results["throughput"]}
    figures[f"{results['sample_n']:,} names, s"] = (results["sample_n_seconds"], "lower")
    for row in results["unique_novel"]:
        figures[f"{row['n']:,} names --unique --novel, s"] = (row["unique_novel_s"], "lower")
    figures[f"{results['sample_n']:,} names of length 6-12, s"] = (results["lengths_6_12_seconds"], "lower")
    for row in results["most_likely"]:
        figures[f"--most-likely -n {row['n']:,}, s"] = (row["seconds"], "lower")
    return figures


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "repeats", "quick", "checkpoint", "against")
    return bench.run(options.parse_args(argv), measure, report, compare, checkpoint=True)


if __name__ == "__main__":
    sys.exit(main())
