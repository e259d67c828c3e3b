"""Exported models against dinogen's own sampler: onnxruntime beside torch, and the web page in Chromium.

For the default model (`dinogen train`, or --default-run) and a first-names model (`dinogen train -c names`
on --names for 200 steps, or --names-run):

  sampling   names/s at batch 4,096 on the CPU at temperature 1: the loop of examples/onnx_sample.py (numpy
             and onnxruntime) on the exported graph, and dinogen's Generator (torch) in the same process,
             taking turns; the median of --repeats each, and their ratio (onnxruntime / torch).
  page       the size of the `dinogen export --format html` page; in headless Chromium, opened from disk,
             the page's own timings: names/s of a click on Generate for --page-names names, and the time
             from opening the file to the first names on the page (performance.now() once they are shown).

    python benchmarks/export_speed.py
    python benchmarks/export_speed.py --default-run checkpoints/default --names-run checkpoints/names --json export.json
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from _common import dinogen_command, environment, fmt_float, fmt_int, median, print_table

from dinogen.page_check import check_page
from dinogen.sample import Generator

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NAMES = REPO.parent / "shared" / "data" / "names.txt"
sys.path.insert(0, str(REPO / "examples"))
from onnx_sample import StepModel, sample  # noqa: E402  (the example is a script, not a package)

BATCH = 4096


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dinogen(*args) -> None:
    """Run the dinogen CLI, its output on stderr."""
    command = [*dinogen_command(), *map(str, args)]
    log("$ " + shlex.join(command))
    subprocess.run(command, check=True, stdout=sys.stderr)


def trained(run: str | None, folder: Path, name: str, train_args: list[str]) -> Path:
    """The given run directory, or one trained here with `train_args`."""
    if run:
        return Path(run)
    dinogen("train", "-o", folder / name, "-q", *train_args)
    return folder / name


def sampling_speed(run: Path, graph: Path, repeats: int) -> dict[str, float]:
    """Names/s of the onnxruntime loop and of dinogen's torch sampler, measured in turns."""
    generator = Generator.from_checkpoint(run, device="cpu")
    model = StepModel(str(graph))
    rng = np.random.default_rng(0)
    timings: dict[str, list[float]] = {"onnxruntime": [], "torch": []}
    generator.sample(256, seed=0, batch_size=256)  # warm-up both
    sample(model, 256, rng)
    for repeat in range(repeats):
        start = time.perf_counter()
        names = len(generator.sample(BATCH, seed=repeat, batch_size=BATCH))
        timings["torch"].append(names / (time.perf_counter() - start))
        start = time.perf_counter()
        names = len(sample(model, BATCH, rng))  # names that ran past max_length are dropped, not counted
        timings["onnxruntime"].append(names / (time.perf_counter() - start))
    speeds = {engine: median(values) for engine, values in timings.items()}
    return speeds | {"ratio": speeds["onnxruntime"] / speeds["torch"]}


def page_figures(page: Path, names: int, repeats: int) -> dict[str, float]:
    """The page's size, and its names/s and time to the first names in headless Chromium (medians)."""
    reports = [check_page(page, {"bench": names}) for _ in range(repeats)]
    return {
        "bytes": page.stat().st_size,
        "names_per_second": median([report["bench"]["names_per_second"] for report in reports]),
        "first_names_ms": median([report["first_names_ms"] for report in reports]),
        "weights_ms": median([report["weights_ms"] for report in reports]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default-run", help="run directory of the default model [default: train one]")
    parser.add_argument("--names-run", help="run directory of a names model [default: train one on --names]")
    parser.add_argument("--names", default=str(DEFAULT_NAMES), help="names corpus (default: ../shared/data/names.txt)")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per figure; medians reported")
    parser.add_argument("--page-names", type=int, nargs=2, default=[2000, 300], metavar=("DEFAULT", "NAMES"),
                        help="names per timed click on Generate, per model")  # fmt: skip
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    load = os.getloadavg()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dinogen-export-bench-") as tmp:
        folder = Path(tmp)
        runs = {
            "default": trained(args.default_run, folder, "default", []),
            "names": trained(args.names_run, folder, "names", ["-c", "names", "--data", args.names,
                                                               "--set", "train.max_steps=200"]),
        }  # fmt: skip
        for (name, run), page_names in zip(runs.items(), args.page_names, strict=True):
            dinogen("export", run, "-o", folder / f"{name}.onnx")
            dinogen("export", run, "--format", "html", "-o", folder / f"{name}.html")
            log(f"sampling with {name} ...")
            speeds = sampling_speed(run, folder / f"{name}.onnx", args.repeats)
            log(f"the {name} page in Chromium ...")
            results[name] = {"run": str(run), "sampling": speeds,
                             "page": page_figures(folder / f"{name}.html", page_names, args.repeats)}  # fmt: skip
    end_load = os.getloadavg()
    info = environment(torch.device("cpu")) | {"load_average": {"start": load, "end": end_load}, "command": command}
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores, torch {info['torch_version']} "
          f"({info['torch_num_threads']} threads), onnxruntime {onnxruntime.__version__}")  # fmt: skip
    start, end = (" ".join(f"{x:.2f}" for x in loads) for loads in (load, end_load))
    print(f"load average (1, 5, 15 min): {start} at the start, {end} at the end")
    print(f"command: {command}")
    sampling = [[name, fmt_int(r["sampling"]["onnxruntime"]), fmt_int(r["sampling"]["torch"]),
                 f"{r['sampling']['ratio']:.2f}x"] for name, r in results.items()]  # fmt: skip
    pages = [[name, f"{r['page']['bytes'] / 1e6:.2f} MB", fmt_int(r["page"]["names_per_second"]),
              f"{fmt_float(r['page']['first_names_ms'], 0)} ms", f"{fmt_float(r['page']['weights_ms'], 0)} ms"]
             for name, r in results.items()]  # fmt: skip
    print_table(
        f"Sampling on the CPU, names/s at batch {BATCH:,} (median of {args.repeats})",
        ["model", "onnxruntime", "torch", "ratio"],
        sampling,
        ["onnxruntime: examples/onnx_sample.py's loop on the exported graph; torch: dinogen's Generator"],
    )
    print_table(
        f"The web page in headless Chromium (median of {args.repeats})",
        ["model", "page size", "names/s", "first names", "weights read"],
        pages,
        ["first names / weights read: ms from opening the file (performance.now())"],
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": info, "results": results}, indent=2) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
