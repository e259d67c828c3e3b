"""Peak memory: the resident set of `dinogen train` and `dinogen sample` run as child processes.

  train    `dinogen train -c configs/default.yaml` on the bundled data/dinos.txt and on --names for
           200 optimizer steps (train.max_steps).
  sample   `dinogen sample CHECKPOINT -n 10000 -o FILE` and `-n 1000000 -o FILE`, from --checkpoint (else
           `dinogen train -o <tmp>/sample-model --set train.epochs=3`); target: the 1,000,000 run within
           100 MB of the 10,000 run.

Peak RSS is ru_maxrss of the child process (os.wait4), the median over --repeats runs; the wall time
of each command is reported beside it. Tables go to stdout, progress to stderr.

    python benchmarks/memory.py --json memory.json
    python benchmarks/memory.py --quick           # smoke test: figures not meaningful
"""

import sys

import _common as bench
from _children import dinogen_command, run_child_checked
from _inputs import default_config_path, find_corpora
from _output import fmt_float, log, print_table
from _timing import median

MB = 1024 * 1024
TARGET_BYTES = 100 * MB  # sampling 1,000,000 names may use this much more than 10,000
FULL = {"train_steps": 200, "sample_ns": (10_000, 1_000_000)}
QUICK = {"train_steps": 10, "sample_ns": (1_000, 10_000), "repeats": 1}


def measure(args, device, workdir) -> dict:
    """Peak RSS of `dinogen train` (per corpus) and `dinogen sample` at two N, median over repeats."""
    work = bench.amounts(args, FULL, QUICK)
    cli = dinogen_command()
    commands = []
    for corpus, path in find_corpora(args).items():
        train = [*cli, "train", "-q", "-c", str(default_config_path()), "--data", str(path), "--overwrite"]
        train += ["-o", str(workdir / f"mem-{corpus}"), "--device", str(device)]
        train += ["--set", f"train.max_steps={work.train_steps}", "--set", f"train.precision={args.precision}"]
        commands.append((f"dinogen train ({corpus}, {work.train_steps} steps)", "train", None, train))
    for n in work.sample_ns:
        sample = [*cli, "sample", str(args.checkpoint), "-n", str(n), "-o", str(workdir / "sampled.txt")]
        commands.append((f"dinogen sample -n {n:,} -o FILE", "sample", n, sample + ["--device", str(device)]))
    rows = []
    for label, kind, n, command in commands:
        log(f"memory: {label} ...")
        runs = [run_child_checked(command, cwd=workdir) for _ in range(work.repeats)]
        rss, wall = median([r.max_rss_bytes for r in runs]), median([r.seconds for r in runs])
        rows.append({"command": label, "kind": kind, "n": n, "peak_rss_mb": rss / MB, "wall_s": wall})
    return {"settings": vars(work), "rows": rows}


def report(results: dict) -> None:
    rows = results["rows"]
    samples = [r for r in rows if r["kind"] == "sample"]
    notes = ["peak RSS: ru_maxrss of the child process (os.wait4), median over repeats"]
    if len(samples) == 2:
        small, large = samples
        extra = large["peak_rss_mb"] - small["peak_rss_mb"]
        if (small["n"], large["n"]) == (10_000, 1_000_000):
            verdict = "met" if extra * MB <= TARGET_BYTES else "MISSED"
        else:
            verdict = "not judged: the target compares -n 1,000,000 with -n 10,000"
        notes.append(
            f"-n {large['n']:,} uses {extra:+.1f} MB over -n {small['n']:,} "
            f"(target: within {TARGET_BYTES / MB:.0f} MB): {verdict}"
        )
    print_table(
        "Peak resident memory of CLI runs",
        ["command", "peak RSS MB", "wall s"],
        [[r["command"], fmt_float(r["peak_rss_mb"], 1), fmt_float(r["wall_s"])] for r in rows],
        notes,
    )


def compare(results: dict) -> dict[str, tuple[float, str]]:
    """The figures --against sets side by side: each command's peak RSS."""
    return {f"{r['command']}: peak RSS MB": (r["peak_rss_mb"], "lower") for r in results["rows"]}


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "precision", "repeats", "quick", "names", "checkpoint", "against")
    return bench.run(options.parse_args(argv), measure, report, compare, checkpoint=True)


if __name__ == "__main__":
    sys.exit(main())
