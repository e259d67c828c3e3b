"""Start-up: the wall time of `dinogen --help` and of `dinogen sample CHECKPOINT -n 1`, as child processes.

The checkpoint is --checkpoint, else `dinogen train -o <tmp>/sample-model --set train.epochs=3`. Each
command runs --repeats times; the median and the fastest run are reported. Tables go to stdout,
progress to stderr.

    python benchmarks/startup.py --json startup.json
    python benchmarks/startup.py --quick          # smoke test: figures not meaningful
    python benchmarks/startup.py --against ../dinogen-before
"""

import sys

import _common as bench
from _children import dinogen_command, run_child_checked
from _output import fmt_float, log, print_table
from _timing import median


def measure(args, device, workdir) -> dict:
    """Wall time of `dinogen --help` and of `dinogen sample CHECKPOINT -n 1`."""
    work = bench.amounts(args, {}, {"repeats": 1})
    cli = dinogen_command()
    commands = [
        ("dinogen --help", [*cli, "--help"]),
        ("dinogen sample CHECKPOINT -n 1", [*cli, "sample", str(args.checkpoint), "-n", "1", "--device", str(device)]),
    ]
    rows = []
    for label, command in commands:
        log(f"startup: {label} ...")
        seconds = [run_child_checked(command, cwd=workdir).seconds for _ in range(work.repeats)]
        rows.append({"command": label, "median_s": median(seconds), "min_s": min(seconds), "runs": len(seconds)})
    return {"settings": vars(work), "rows": rows}


def report(results: dict) -> None:
    print_table(
        "Start-up wall time of the CLI",
        ["command", "median s", "min s", "runs"],
        [
            [r["command"], fmt_float(r["median_s"], 3), fmt_float(r["min_s"], 3), str(r["runs"])]
            for r in results["rows"]
        ],
    )


def compare(results: dict) -> dict[str, tuple[float, str]]:
    """The figures --against sets side by side: each command's wall time."""
    return {f"{r['command']}, s": (r["median_s"], "lower") for r in results["rows"]}


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "repeats", "quick", "checkpoint", "against")
    return bench.run(options.parse_args(argv), measure, report, compare, checkpoint=True)


if __name__ == "__main__":
    sys.exit(main())
