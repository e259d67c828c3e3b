"""Constraints: what sampling with them costs, on the bundled dinosaur model (or --checkpoint).

Each figure is the median of --repeats timed calls (one warm-up call first); tables go to stdout.

  masked      `--ends-with raptor -n 1000` (also with --max-length 14) and `--pattern '^[a-z]{4,8}(saurus|raptor)$'
              -n 1000` against plain `-n 1000`: seconds (median of --repeats), the time ratio, the names' mean
              length, and the samples rejected when exactly N are drawn (plain sampling drops names that run past
              --max-length; a masked draw steers every name into the range, so it rejects none).
  exact       `--ends-with raptor --exact -n 1000`: rejection from the model's own distribution, and the share
              of samples it keeps.
  most likely `--most-likely -n 100 --ends-with raptor`.
  impossible  seconds from the call to the sentence for `--pattern '^[a-z]{41,}saurus$'` (names end by 46).
  blocklist   1,000,000 names with a blocklist of 300 overlapping pieces of the model's training names: the
              names holding a blocked text (checked with Python's re), the seconds against as many plain
              names, and the share of plain names that would hold one.

    python benchmarks/constraints.py --json constraints.json
    python benchmarks/constraints.py --quick      # smoke test: figures not meaningful
    python benchmarks/constraints.py --device cuda --checkpoint checkpoints/default
"""

import functools
import os
import re
import sys
import time

import _common as bench
from _output import fmt_float, fmt_int, fmt_pct, log, print_table
from _timing import median, timed

from dinogen import DinogenError, Generator, NotEnoughNames

RAPTOR = {"ends_with": "raptor"}
SHORT_RAPTOR = {"ends_with": "raptor", "max_length": 14}
PATTERN = {"pattern": "^[a-z]{4,8}(saurus|raptor)$"}
IMPOSSIBLE = "^[a-z]{41,}saurus$"
FULL = {"n": 1_000, "most_likely_n": 100, "blocklist_names": 1_000_000, "blocklist_entries": 300, "plain_check": 20_000}
QUICK = {"n": 100, "most_likely_n": 10, "blocklist_names": 10_000, "blocklist_entries": 300, "plain_check": 2_000,
         "repeats": 1}  # fmt: skip


def kept_of(generator: Generator, n: int, **options) -> int:
    """How many of exactly `n` draws give a name (the others were rejected)."""
    try:
        return len(generator.sample(n, seed=0, max_attempts=n, **options))
    except NotEnoughNames as err:
        return err.found


def blocklist_entries(generator: Generator, count: int) -> list[str]:
    """`count` pieces of 3 to 5 letters of the training names, evenly spread over their sorted list: many overlap."""
    pieces = sorted({name[i : i + size] for name in generator.known_names for size in (3, 4, 5)
                     for i in range(len(name) - size + 1)})  # fmt: skip
    return pieces[:: max(1, len(pieces) // count)][:count]


def measure(args, device, workdir) -> dict:
    work = bench.amounts(args, FULL, QUICK)
    generator = (
        Generator.from_checkpoint(args.checkpoint, str(device))
        if args.checkpoint
        else Generator.pretrained(str(device))
    )
    generator.sample(256, seed=0, **RAPTOR)  # warm-up

    def seconds(n: int, **options) -> float:
        calls = [functools.partial(generator.sample, n, seed=repeat, **options) for repeat in range(work.repeats)]
        return median([timed(call, device) for call in calls])

    rows = []
    variants = [("plain", {}), ("--ends-with raptor", RAPTOR), ("--ends-with raptor --max-length 14", SHORT_RAPTOR),
                ("--pattern", PATTERN)]  # fmt: skip
    for label, options in variants:
        log(f"constraints: {work.n:,} names, {label} ...")
        names = generator.sample(work.n, seed=0, **options)
        rows.append({"label": label, "options": options, "seconds": seconds(work.n, **options),
                     "mean_length": sum(map(len, names)) / len(names), "rejected": work.n - kept_of(generator, work.n,
                     **options)})  # fmt: skip
    log(f"constraints: {work.n:,} names, --ends-with raptor --exact ...")
    exact_seconds = seconds(work.n, exact=True, max_attempts=10**7, **RAPTOR)
    draws = 40 * work.n
    exact_kept = kept_of(generator, draws, exact=True, **RAPTOR)
    exact_names = generator.sample(work.n, seed=0, exact=True, max_attempts=10**7, **RAPTOR)
    log(f"constraints: --most-likely -n {work.most_likely_n} --ends-with raptor ...")
    likeliest = functools.partial(generator.most_likely, work.most_likely_n, **RAPTOR)
    most_likely_seconds = median([timed(likeliest, device) for _ in range(work.repeats)])
    log("constraints: an impossible pattern ...")
    refusals = [refusal(generator) for _ in range(work.repeats)]
    entries = blocklist_entries(generator, work.blocklist_entries)
    blocked = re.compile("|".join(map(re.escape, entries)))
    log(f"constraints: {work.blocklist_names:,} names with a blocklist of {len(entries)} entries ...")
    names: list[str] = []
    blocklist_seconds = timed(lambda: names.extend(generator.sample(work.blocklist_names, seed=0, blocklist=entries)),
                              device)  # fmt: skip
    log(f"constraints: {work.blocklist_names:,} names, plain ...")
    plain_seconds = timed(functools.partial(generator.sample, work.blocklist_names, seed=0), device)
    plain = generator.sample(work.plain_check, seed=0)
    return {
        "settings": vars(work),
        "checkpoint": args.checkpoint or "the bundled dinosaur model",
        "rows": rows,
        "exact": {"seconds": exact_seconds, "kept": exact_kept, "draws": draws,
                  "mean_length": sum(map(len, exact_names)) / len(exact_names)},  # fmt: skip
        "most_likely_seconds": most_likely_seconds,
        "impossible": {"pattern": IMPOSSIBLE, "seconds": median([t for t, _ in refusals]), "sentence": refusals[0][1]},
        "blocklist": {"entries": len(entries), "examples": entries[:8], "names": len(names),
                      "seconds": blocklist_seconds, "plain_seconds": plain_seconds,
                      "with_blocked_text": sum(bool(blocked.search(n)) for n in names),
                      "plain_share_with_blocked_text": sum(bool(blocked.search(n)) for n in plain) / len(plain)},
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
    }  # fmt: skip


def refusal(generator: Generator) -> tuple[float, str]:
    """Seconds from the call to the sentence for the impossible pattern, and the sentence."""
    started = time.perf_counter()
    try:
        generator.sample(10, pattern=IMPOSSIBLE)
    except DinogenError as err:
        return time.perf_counter() - started, str(err)
    raise RuntimeError(f"--pattern {IMPOSSIBLE!r} was not refused")


def report(results: dict) -> None:
    rows, n = results["rows"], results["settings"]["n"]
    plain = rows[0]["seconds"]
    exact = results["exact"]
    print_table(
        f"Sampling {n:,} names with constraints",
        ["options", "seconds", "ratio", "mean length", f"rejected of {n:,} drawn"],
        [[r["label"], fmt_float(r["seconds"], 3), f"{r['seconds'] / plain:.2f}x", fmt_float(r["mean_length"], 1),
          fmt_int(r["rejected"])] for r in rows]
        + [["--ends-with raptor --exact", fmt_float(exact["seconds"], 3), f"{exact['seconds'] / plain:.2f}x",
            fmt_float(exact["mean_length"], 1), f"keeps {fmt_pct(exact['kept'] / exact['draws'])}"]],
        [f"checkpoint: {results['checkpoint']}; ratio = time / plain time; --pattern is {PATTERN['pattern']!r}",
         "masked draws steer every name into the length range and the constraints: nothing is rejected"],
    )  # fmt: skip
    impossible, blocklist = results["impossible"], results["blocklist"]
    print_table(
        "Most likely names, an impossible pattern, a blocklist",
        ["measure", "seconds", "result"],
        [[f"--most-likely -n {results['settings']['most_likely_n']} --ends-with raptor",
          fmt_float(results["most_likely_seconds"], 3), "exact best-first search"],
         [f"--pattern {impossible['pattern']!r}", fmt_float(impossible["seconds"], 4), impossible["sentence"]],
         [f"{blocklist['names']:,} names, --blocklist of {blocklist['entries']} entries",
          fmt_float(blocklist["seconds"], 1),
          f"{blocklist['seconds'] / blocklist['plain_seconds']:.2f}x plain; "
          f"{blocklist['with_blocked_text']:,} hold a blocked text "
          f"({fmt_pct(blocklist['plain_share_with_blocked_text'])} of plain names would)"]],
        [f"blocklist entries such as {', '.join(blocklist['examples'])}",
         "load average at the end: " + " / ".join(f"{load:.2f}" for load in results["load_average_at_end"])],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = bench.parser(__doc__, "device", "repeats", "quick", "checkpoint")
    return bench.run(options.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
