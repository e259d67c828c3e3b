"""The `dinogen` command line: parse options, call the library, print results.

Heavy modules (torch and everything using it) are imported inside the commands, so that
`dinogen --help` and `--version` answer at once.
"""

import sys
from contextlib import nullcontext
from pathlib import Path

import click

from dinogen import __version__
from dinogen.errors import DinogenError

DEFAULT_RUN = Path("checkpoints/default")


class _Group(click.Group):
    """Turns the library's errors into one sentence on stderr with their exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DinogenError as err:
            if ctx.params.get("debug"):
                raise
            error = click.ClickException(str(err))
            error.exit_code = err.exit_code
            raise error from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dinogen")
@click.option("--debug", is_flag=True, help="Show a full traceback on errors.")
def main(debug: bool) -> None:
    """Learn what names of a kind look like, and write new ones.

    \b
    Examples:
      dinogen train                          # the default GRU on the bundled dinosaur list
      dinogen sample -n 20 --temperature 0.8
      dinogen train -c lstm --set train.epochs=5 --data my_names.txt
    """


@main.command()
@click.option("-c", "--config", "config_name", default="default", show_default=True,
              help="YAML config file, or the name of a bundled config (default, gru, lstm, rnn, tiny).")
@click.option("--data", help="Names file, one per line (sets data.path).")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Run directory [default: checkpoints/<config name>].")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps (sets train.device).")
@click.option("--seed", type=int, help="Random seed (sets train.seed).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.lr=0.001 (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in the run directory.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines.")
def train(config_name, data, out, device, seed, overrides, overwrite, quiet) -> None:
    """Train a model and write checkpoints to a run directory.

    \b
    Examples:
      dinogen train
      dinogen train -c lstm -o checkpoints/my-lstm --set model.hidden_size=128
      dinogen train --data names.txt --device cuda --seed 1
    """
    from dinogen.config import find_config, load_config
    from dinogen.run import Run

    config_path = find_config(config_name)
    explicit = [f"data.path={data}"] * bool(data) + [f"train.device={device}"] * bool(device)
    explicit += [f"train.seed={seed}"] * (seed is not None)
    config = load_config(config_path, [*overrides, *explicit])
    run = Run(config, out or Path("checkpoints") / config_path.stem)
    run.prepare_dir(overwrite)
    _log(quiet, f"training {config.model.cell} ({run.model.num_parameters():,} parameters) on "
         f"{len(run.train_names):,} names from {run.data_path}, {len(run.val_names):,} held out; device {run.device}")

    from tqdm import tqdm

    bar = tqdm(total=run.trainer.total_steps, unit="step", file=sys.stderr, disable=True if quiet else None, dynamic_ncols=True)

    def on_evaluation(evaluation) -> None:
        losses = {"train": f"{evaluation.train_loss:.3f}"}
        if evaluation.val_loss is not None:
            losses["val"] = f"{evaluation.val_loss:.3f}"
        bar.set_postfix(losses, refresh=False)
        if bar.disable:
            text = " ".join(f"{k} {v}" for k, v in losses.items())
            _log(quiet, f"step {evaluation.step}/{run.trainer.total_steps} loss {text}")

    with bar:
        run.fit(on_step=lambda step: bar.update(), on_evaluation=on_evaluation)
    best = run.trainer.best_val_loss
    summary = f"best validation loss {best:.4f} nats/char; " if best != float("inf") else ""
    _log(quiet, f"{summary}checkpoints in {run.run_dir}; try: dinogen sample {run.run_dir}")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=10, show_default=True, help="How many names.")
@click.option("-t", "--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Sampling temperature; 0 is greedy (always the likeliest character).")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample only among the K likeliest characters.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Sample only among the likeliest characters whose probabilities reach P.")
@click.option("--prefix", default="", help="Every name starts with this text.")
@click.option("--min-length", type=click.IntRange(min=0), help="Shortest name in characters, prefix included [default: 1].")
@click.option("--max-length", type=click.IntRange(min=1), help="Longest name in characters, prefix included [default: twice the longest training name].")
@click.option("--unique", is_flag=True, help="No name twice.")
@click.option("--novel", is_flag=True, help="No name from the training data.")
@click.option("--exclude", type=click.Path(exists=True, dir_okay=False), help="No name listed in this file.")
@click.option("--seed", type=int, help="Random seed: the same seed gives the same names.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True, help="Names generated per batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl", "csv"]), default="text", show_default=True,
              help="text: one name per line; jsonl/csv add log_prob, nll_per_char and length.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (atomically) instead of stdout.")
def sample(checkpoint, n, temperature, top_k, top_p, prefix, min_length, max_length, unique, novel, exclude,
           seed, batch_size, device, fmt, output) -> None:
    """Write new names from a trained model.

    CHECKPOINT is a .pt file or a run directory (its best.pt) [default: checkpoints/default].
    Exits with status 3 when --unique/--novel/--exclude leave fewer than N names.

    \b
    Examples:
      dinogen sample -n 20 --temperature 0.8
      dinogen sample checkpoints/lstm --prefix tyr --top-k 5
      dinogen sample -n 100000 --unique --novel --format jsonl -o names.jsonl
    """
    from dinogen.data import read_names
    from dinogen.output import atomic_text_file, write_names
    from dinogen.sample import NotEnoughNames

    generator = _generator(checkpoint, device)
    excluded = read_names(exclude, lowercase=False) if exclude else ()
    records = generator.iter_sample(
        n, temperature=temperature, top_k=top_k, top_p=top_p, prefix=prefix, min_length=min_length,
        max_length=max_length, unique=unique, novel=novel, exclude=excluded, seed=seed, batch_size=batch_size,
    )
    shortfall = None
    with atomic_text_file(output) if output else nullcontext(sys.stdout) as file:
        try:
            write_names(_progress(records, n, output), file, fmt)
        except NotEnoughNames as err:
            shortfall = err  # keep what was found; report after the file is in place
    if shortfall:
        click.echo(f"Warning: {shortfall}", err=True)
        sys.exit(shortfall.exit_code)


def _generator(checkpoint: str | None, device: str):
    from dinogen.sample import Generator

    if checkpoint is None:
        if not DEFAULT_RUN.exists():
            raise DinogenError(f"no checkpoint given and {DEFAULT_RUN} does not exist; run `dinogen train` first")
        checkpoint = DEFAULT_RUN
    return Generator.from_checkpoint(checkpoint, device=device)


def _progress(records, total: int, output: str | None):
    """A tqdm bar on stderr when writing to a file from a terminal; the bare iterator otherwise."""
    if output is None or not sys.stderr.isatty():
        return records
    from tqdm import tqdm

    return tqdm(records, total=total, unit="name", file=sys.stderr, dynamic_ncols=True)


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)
