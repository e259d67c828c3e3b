"""A busy machine: `dinogen train` steps/s on a quiet machine and beside one busy process, per thread setting.

configs/names.yaml on --names for 200 steps or at most 20 s of training per run, one evaluation at the
end, under each OpenMP thread setting (THREAD_SETTINGS): the CLI's own choice (threads = cores left
idle), all cores with torch's default, passive and short-spinning OpenMP waits, one thread. The busy
process is a Python loop that keeps one core at 100% for the whole measurement, like a browser tab or
another job on a shared machine. Steps/s counts training time only (metrics.jsonl's elapsed); medians
over --repeats runs.

    python benchmarks/busy.py --json busy.json
    python benchmarks/busy.py --repeats 3
    python benchmarks/busy.py --quick             # smoke test: figures not meaningful
"""

import os
import subprocess
import sys

import _common as bench
from _children import names_training, trained_figures
from _output import fmt_float, log, print_table

FULL = {"steps": 200, "seconds": 20.0}  # at most `seconds`: a badly shared CPU can make 200 steps take minutes
QUICK = {"steps": 5, "seconds": 20.0, "repeats": 1}

# The environment each row runs `dinogen train` under. "dinogen" is the CLI's own choice (as many threads
# as cores stay idle); the others pin torch's threads to every core and vary how OpenMP threads wait for
# each other (libgomp's default spins 300,000 times, then sleeps).
CORES = str(len(os.sched_getaffinity(0)))
THREAD_SETTINGS = {
    "dinogen (threads = idle cores)": {},
    f"{CORES} threads, torch's default": {"OMP_NUM_THREADS": CORES},
    f"{CORES} threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": CORES, "OMP_WAIT_POLICY": "PASSIVE"},
    f"{CORES} threads, GOMP_SPINCOUNT=10000": {"OMP_NUM_THREADS": CORES, "GOMP_SPINCOUNT": "10000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def measure(args, device, workdir) -> dict:
    """Steps/s of each thread setting, quiet and beside one busy process."""
    work = bench.amounts(args, FULL, QUICK)
    rows = []
    run_dir = workdir / "busy"
    for label, variables in THREAD_SETTINGS.items():
        command = ["env", *(f"{key}={value}" for key, value in variables.items())]
        command += names_training(args, device, run_dir, work.steps, max_time=work.seconds)
        row = {"setting": label}
        for load in ("quiet", "busy"):
            log(f"busy: {label}, {load} machine x {work.repeats} ...")
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
            try:
                row[load] = trained_figures(command, run_dir, work.repeats)["steps_per_s"]
            finally:
                if spinner:
                    spinner.kill()
                    spinner.wait()
        rows.append(row)
    return {"settings": vars(work), "rows": rows}


def report(results: dict) -> None:
    rows = results["rows"]
    quiet = rows[0]["quiet"]
    print_table(
        f"Training beside a busy process: configs/names.yaml, {results['settings']['steps']} steps",
        ["threads", "quiet steps/s", "busy steps/s", "busy / quiet", "quiet vs dinogen's"],
        [[r["setting"], fmt_float(r["quiet"]), fmt_float(r["busy"]), f"{r['busy'] / r['quiet']:.0%}",
          f"{r['quiet'] / quiet:.2f}x"] for r in rows],
        ["busy: one other process keeps a core at 100% (a Python loop)",
         "targets: dinogen's busy steps/s >= 40% of its quiet ones, its quiet ones within 5% of the best"],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "precision", "repeats", "quick", "names")
    return bench.run(options.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
