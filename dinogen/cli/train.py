"""`dinogen train`: start or resume a run, and train it with a progress bar."""

import json
import sys

import click

from dinogen.bundled import bundled_configs
from dinogen.cli.common import PathText, global_options, log


@click.command()
@click.argument("names_file", required=False, type=PathText(), metavar="[NAMES_FILE]")
@click.option(
    "-d", "--data", help="Names file, one per line, - for standard input (sets data.path); or give it as NAMES_FILE."
)
@click.option(
    "-c",
    "--config",
    help=f"YAML config file, or the name of a bundled config ({', '.join(bundled_configs())}) [default: default].",
)
@click.option(
    "-o",
    "--out",
    "run_dir",
    type=PathText(file_okay=False),
    help="Run directory [default: a new one, checkpoints/<config name>, or <config name>-2, -3, ... if that is taken].",
)
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps (sets train.device).")
@click.option("--seed", type=int, help="Random seed, any integer, taken modulo 2^64 (sets train.seed).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. train.lr=0.001 (repeatable).",
)
@click.option("--resume", type=PathText(), help="Continue the run in this directory (or from this checkpoint).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in the run directory.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--dry-run", is_flag=True, help="Check config, data and device, say what would run, and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines.")
@global_options
def train(names_file, data, config, run_dir, device, seed, overrides, resume, overwrite, print_config, dry_run, quiet):
    """Train a model on NAMES_FILE (one name per line) and write checkpoints to a run directory.

    Without a names file it learns the bundled list of dinosaur genera. Ctrl-C (or SIGTERM) saves
    last.pt and prints the command that resumes the run. Under torchrun, the processes train one
    model together (DistributedDataParallel) and rank 0 writes.

    \b
    Examples:
      dinogen train my_names.txt
      dinogen train
      dinogen train -c lstm -o checkpoints/my-lstm --set model.hidden_size=128
      dinogen train -d names.txt --device cuda --seed 1
      dinogen train --resume checkpoints/default --set train.epochs=40
      torchrun --standalone --nproc-per-node 2 -m dinogen train -c names names.txt
    """
    from dinogen.distributed import launched_rank
    from dinogen.output import standard_output
    from dinogen.run import Run, planned_config

    if names_file is not None and data is not None:
        raise click.UsageError("give the names file once: as NAMES_FILE or with -d/--data")
    explicit = {"data.path": data or names_file, "train.device": device, "train.seed": seed}
    # JSON is YAML: quoted, a path such as "-" or "null" stays a string
    overrides = [*overrides, *(f"{key}={json.dumps(value)}" for key, value in explicit.items() if value is not None)]
    if print_config:
        planned = planned_config(config, overrides, resume)
        if launched_rank() == 0:
            with standard_output() as stdout:
                stdout.write(planned.to_yaml())
        return
    run = Run.start(config, run_dir, overrides=overrides, resume=resume, overwrite=overwrite, dry_run=dry_run)
    click.get_current_context().call_on_close(run.close)  # the lock and the process group, however it ends
    quiet = quiet or not run.world.is_main  # rank 0 alone reports
    if run.finished:
        log(
            quiet,
            f"nothing to do: {run.run_dir} is at step {run.trainer.step} of {run.trainer.total_steps}; "
            "raise the budget, e.g. --set train.epochs=N or train.max_steps=N",
        )
        return
    log(quiet, run.describe("would train" if dry_run else "resuming" if resume else "training"))
    if dry_run:
        return
    reason = _fit_with_progress(run, quiet)
    if run.signal:
        last = run.run_dir / "last.pt"
        log(
            not run.world.is_main,
            f"interrupted at step {run.trainer.step}; saved {last}. Resume with: dinogen train --resume {run.run_dir}",
        )
        sys.exit(128 + run.signal)
    best = run.trainer.best_val_loss
    summary = f"best validation loss {best:.4f} nats/char; " if best != float("inf") else ""
    log(quiet, f"stopped: {reason}; {summary}checkpoints in {run.run_dir}; try: dinogen sample {run.run_dir}")


def _fit_with_progress(run, quiet: bool) -> str:
    """Train with a tqdm bar on stderr (a log line per evaluation when stderr is not a terminal); why it stopped."""
    from tqdm import tqdm

    trainer = run.trainer
    # Count steps, or seconds when only train.max_time limits the run.
    total, unit = (trainer.total_steps, "step") if trainer.total_steps else (run.config.train.max_time, "s")
    done = (lambda: trainer.step) if unit == "step" else (lambda: round(min(trainer.elapsed, total), 1))
    bar = tqdm(
        total=total, initial=done(), unit=unit, file=sys.stderr, disable=True if quiet else None, dynamic_ncols=True
    )

    def on_evaluation(evaluation) -> None:
        shown = {"train": f"{evaluation.train_loss:.3f}"}
        if evaluation.val_loss is not None:
            shown["val"] = f"{evaluation.val_loss:.3f}"
        shown |= {"lr": f"{evaluation.lr:.2e}", "char/s": f"{evaluation.chars_per_sec:,.0f}"}
        bar.set_postfix(shown, refresh=False)
        if bar.disable:
            steps = f"step {evaluation.step}/{trainer.total_steps or '-'} "
            log(quiet, steps + " ".join(f"{k} {v}" for k, v in shown.items()))

    with bar:
        return run.fit(on_step=lambda step: bar.update(done() - bar.n), on_evaluation=on_evaluation)
