"""The frame of every benchmark script: its common options, and the driver that measures, prints and writes JSON."""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from _against import side_by_side
from _inputs import prepare_checkpoint
from _machine import machine, print_machine
from _output import write_json

import dinogen
from dinogen.device import resolve_device
from dinogen.errors import DinogenError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NAMES = REPO.parent / "shared" / "data" / "names.txt"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_OPTIONS: dict[str, tuple[str, dict]] = {
    "device": ("--device", {"default": "cpu", "help": "cpu, cuda, cuda:N, mps or auto [default: cpu]"}),
    "precision": ("--precision", {"choices": ["fp32", "bf16"], "default": "fp32", "help": "of training [fp32]"}),
    "batch-size": ("--batch-size", {"help": "train.batch_size: a number or auto [default: the config's]"}),
    "repeats": ("--repeats", {"type": _positive, "default": 5, "help": "measurements per figure; medians [5]"}),
    "quick": ("--quick", {"action": "store_true", "help": "a smoke test: little work, figures not meaningful"}),
    "names": ("--names", {"default": str(DEFAULT_NAMES), "help": "a second names file [../shared/data/names.txt]"}),
    "checkpoint": ("--checkpoint", {"help": "checkpoint or run directory to sample from [default: train one]"}),
    "against": (
        "--against",
        {"metavar": "PATH", "help": "also measure the dinogen source tree at PATH (a checkout), runs alternating"},
    ),
}


def parser(doc: str, *options: str) -> argparse.ArgumentParser:
    """An argument parser with the named common options (keys of _OPTIONS) and --json."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    for option in options:
        flag, settings = _OPTIONS[option]
        parser.add_argument(flag, **settings)
    parser.add_argument("--json", metavar="FILE", help="also write the machine, command and figures to FILE")
    if "against" in options:  # a child of --against writes its figures here instead of printing tables
        parser.add_argument("--as-child", metavar="FILE", help=argparse.SUPPRESS)
    return parser


def rounds(args: argparse.Namespace) -> int:
    """How many times each figure is measured: --repeats, at most 2 with --quick."""
    return min(args.repeats, 2) if args.quick else args.repeats


def amounts(args: argparse.Namespace, full: dict, quick: dict) -> SimpleNamespace:
    """How much work each measurement does: `full`, or `quick` with --quick (which may set its own repeats)."""
    return SimpleNamespace(**({"repeats": rounds(args)} | (quick if args.quick else full)))


def run(
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, torch.device, Path], dict],
    report: Callable[[dict], None],
    compare: Callable[[dict], dict[str, tuple[float, str]]] | None = None,
    checkpoint: bool = False,
) -> int:
    """Print the machine and command, measure (with a checkpoint to sample if asked), print tables, write JSON.

    `compare` names the figures --against sets side by side: label -> (value, "higher" or "lower" is better).
    """
    script = Path(sys.argv[0]).name
    try:
        device = resolve_device(args.device)
    except DinogenError as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        return 2
    child_file = getattr(args, "as_child", None)
    document: dict[str, object] = {"machine": machine(device), "options": vars(args)}
    if not child_file:
        print_machine(f"dinogen benchmark: {script}", document["machine"])
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="dinogen-bench-") as tmp:
            if getattr(args, "against", None) and not child_file:
                document["against"] = side_by_side(args, device, Path(tmp), checkpoint, rounds(args))
            else:
                if checkpoint:
                    args.checkpoint, args.checkpoint_source = prepare_checkpoint(args, device, Path(tmp))
                document["results"] = results = measure(args, device, Path(tmp))
                if child_file:
                    figures = {"dinogen": dinogen.__file__, "figures": compare(results), "results": results}
                    write_json(child_file, figures)
                    return 0
                report(results)
    except (DinogenError, RuntimeError) as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        return 1
    document["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {document['total_seconds']:.1f} s")
    if args.json:
        write_json(args.json, document)
        print(f"wrote {args.json}")
    return 0
