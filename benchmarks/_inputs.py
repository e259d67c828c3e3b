"""What the benchmarks run on: the bundled default config, the names files and faker's lists, test splits, the
checkpoint to sample from."""

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from _children import dinogen_command, run_child_checked, tree_environment
from _output import log

from dinogen.bundled import bundled_file
from dinogen.data import parse_names
from dinogen.errors import DinogenError

CHECKPOINT_EPOCHS = 3  # of the model trained to sample from when no --checkpoint is given (1 with --quick)


def default_config_path() -> Path:
    path = bundled_file("configs/default.yaml")
    if path is None:
        raise DinogenError("configs/default.yaml is not bundled with this dinogen")
    return path


def find_corpora(args: argparse.Namespace) -> dict[str, Path]:
    """The names files to train on: the bundled dinosaurs and --names (skipped with a warning if absent)."""
    found = {"dinos": bundled_file("data/dinos.txt")}
    names = Path(args.names)
    if names.is_file():
        found[names.stem] = names
    else:
        log(f"warning: --names {names} does not exist; only data/dinos.txt is used")
    return found


def faker_names(module: str, attribute: str, lowercase: bool = False) -> Callable[[], list[str]]:
    """A list that faker ships as a provider's attribute, e.g. ('person.en_US', 'first_names'), cleaned as dinogen
    reads a names file (a dict of names and weights gives its names); faker is imported only when it is built."""

    def build() -> list[str]:
        provider = importlib.import_module(f"faker.providers.{module}").Provider
        return parse_names("\n".join(getattr(provider, attribute)), lowercase)

    return build


def split_test(names: list[str], size: int, seed: int) -> tuple[list[str], list[str]]:
    """Hold out `size` names chosen by `seed`: (rest, test)."""
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    test = {names[i] for i in order[:size]}
    return [n for n in names if n not in test], [names[i] for i in order[:size]]


def split_list(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test), the test share chosen by `seed`; a test name with a character no other name has is trained on."""
    rest, test = split_test(names, round(fraction * len(names)), seed)
    known = set("".join(rest))
    moved = [name for name in test if not set(name) <= known]
    return rest + moved, [name for name in test if name not in moved]


def prepare_checkpoint(
    args: argparse.Namespace, device: torch.device, workdir: Path, tree: Path | None = None
) -> tuple[Path, str]:
    """The checkpoint to sample from: --checkpoint, or a short `dinogen train` run in `workdir` (of `tree`)."""
    if args.checkpoint:
        path = Path(args.checkpoint).resolve()
        if not path.exists():
            raise DinogenError(f"--checkpoint {path} does not exist")
        return path, f"given: {path}"
    epochs = 1 if args.quick else CHECKPOINT_EPOCHS
    out = workdir / "sample-model"
    command = [*dinogen_command(), "train", "-q", "-c", "default", "-o", str(out)]  # the tree's own default.yaml
    command += ["--device", str(device), "--set", f"train.epochs={epochs}"]
    log(f"checkpoint: {' '.join(command[1:])} ...")
    run_child_checked(command, cwd=workdir, env=tree_environment(tree))  # in workdir, data/dinos.txt is the bundled one
    return out, f"trained for this benchmark: dinogen train --set train.epochs={epochs} (configs/default.yaml, dinos)"
