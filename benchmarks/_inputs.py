"""What the benchmarks run on: the bundled default config, the names files, the checkpoint to sample from."""

import argparse
from pathlib import Path

import torch
from _children import dinogen_command, run_child_checked, tree_environment
from _output import log

from dinogen.bundled import bundled_file
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
