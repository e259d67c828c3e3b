"""--against: this script's figures measured on this dinogen and on another checkout, runs alternating, side by side."""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _children import tree_environment
from _inputs import prepare_checkpoint
from _machine import source_tree, tree_version
from _output import fmt_figure, log, print_table
from _timing import median

from dinogen.errors import DinogenError


def side_by_side(args: argparse.Namespace, device: torch.device, workdir: Path, checkpoint: bool, rounds: int) -> dict:
    """Run this script in child processes on this dinogen (A) and the tree at --against (B), A, B, A, B, ...

    `rounds` runs of each tree. Each child measures every figure once (--repeats 1) with PYTHONPATH set to
    its tree alone, and says where it imported dinogen from; the table gives each tree's median and their
    ratio. Without --checkpoint, each tree trains its own model to sample from (a checkpoint's format may
    change).
    """
    trees = {"A": source_tree(), "B": Path(args.against).resolve()}
    if not (trees["B"] / "dinogen" / "__init__.py").is_file():
        raise DinogenError(f"--against {trees['B']} holds no dinogen/ package; give the root of a checkout")
    extra: dict[str, list[str]] = {"A": [], "B": []}
    if checkpoint:
        for label, tree in trees.items():
            (workdir / label).mkdir()
            extra[label] = ["--checkpoint", str(prepare_checkpoint(args, device, workdir / label, tree)[0])]
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for round_ in range(rounds):
        for label, tree in trees.items():
            log(f"against: round {round_ + 1} of {rounds}, {label} = {tree} ...")
            runs[label].append(_child_figures(tree, extra[label]))
    figures = {label: {name: [run["figures"][name] for run in runs[label]] for name in runs["A"][0]["figures"]}
               for label in trees}  # fmt: skip
    rows = []
    for name, values in figures["A"].items():
        a, b = median([v for v, _ in values]), median([v for v, _ in figures["B"][name]])
        better = values[0][1]
        rows.append({"figure": name, "A": a, "B": b, "A_vs_B": a / b if better == "higher" else b / a})
    print_table(
        f"Side by side, {rounds} run(s) of each tree, alternating A, B, A, B, ...",
        ["figure", "A median", "B median", "A vs B"],
        [[r["figure"], fmt_figure(r["A"]), fmt_figure(r["B"]), f"{r['A_vs_B']:.2f}x"] for r in rows],
        [f"{label}: dinogen imported from {runs[label][0]['dinogen']} ({tree_version(tree)})"
         for label, tree in trees.items()]
        + ["A vs B: A's figure over B's where higher is better, B's over A's for times and sizes: "
           "above 1.00x, A does better"],
    )  # fmt: skip
    return {"trees": {label: str(tree) for label, tree in trees.items()}, "rows": rows, "runs": runs}


def _child_figures(tree: Path, extra: list[str]) -> dict:
    """This script's figures, measured once in a child process that imports dinogen from `tree`."""
    with tempfile.TemporaryDirectory(prefix="dinogen-bench-child-") as tmp:
        report = Path(tmp) / "figures.json"
        command = [sys.executable, str(Path(sys.argv[0]).resolve()), *sys.argv[1:], *extra]
        command += ["--repeats", "1", "--as-child", str(report)]  # one measurement per run: the parent alternates
        done = subprocess.run(command, env=tree_environment(tree), stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"the run on {tree} failed with exit code {done.returncode}")
        result = json.loads(report.read_text(encoding="utf-8"))
    imported = Path(result["dinogen"]).resolve()
    if not imported.is_relative_to(tree):
        raise RuntimeError(f"the run meant for {tree} imported dinogen from {imported}")
    log(f"against: dinogen imported from {imported}")
    return result
