"""The `dinogen` command line: parse options, call the library, print results.

Heavy modules (torch and everything using it) are imported inside the commands, so that
`dinogen --help` and `--version` answer at once.
"""

import math
import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from dinogen import __version__
from dinogen.errors import DinogenError, shorten
from dinogen.limits import MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES, MAX_SAMPLES, MAX_TOP_K

DEFAULT_RUN = Path("checkpoints/default")


class _Group(click.Group):
    """Turns the library's errors into one sentence on stderr with their exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`dinogen sample | head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error when Python flushes stdout
            sys.exit(128 + 13)  # as if killed by SIGPIPE
        except DinogenError as err:
            if ctx.params.get("debug"):
                raise
            error = click.ClickException(str(err))
            error.exit_code = err.exit_code
            raise error from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dinogen")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.option("--debug", is_flag=True, help="Show a full traceback on errors.")
def main(verbose: bool, debug: bool) -> None:
    """Learn what names of a kind look like, and write new ones.

    \b
    Examples:
      dinogen train                          # the default GRU on the bundled dinosaur list
      dinogen sample -n 20 --temperature 0.8
      dinogen train -c lstm --set train.epochs=5 --data my_names.txt
    """
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("dinogen")
    logger.handlers = [handler]  # replaces the handler of an earlier call in the same process
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False
    _share_the_cpu()


def _share_the_cpu() -> None:
    """Let torch's OpenMP threads sleep, not spin, while they wait for each other (unless the user chose).

    By default a waiting thread spins for a while; when another program holds one of the cores, the
    thread that should run is queued behind the spinning one and every small parallel step waits a time
    slice: training ran 26x slower beside one busy process. OpenMP reads this once, when torch is
    imported, which in the CLI happens inside the commands, after this.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@main.command()
@click.option(
    "-c",
    "--config",
    "config_name",
    default="default",
    show_default=True,
    help="YAML config file, or the name of a bundled config (default, gru, lstm, rnn, names, tiny).",
)
@click.option("--data", help="Names file, one per line (sets data.path).")
@click.option(
    "-o", "--out", type=click.Path(file_okay=False), help="Run directory [default: checkpoints/<config name>]."
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
@click.option(
    "--resume", type=click.Path(exists=True), help="Continue the run in this directory (or from this checkpoint)."
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in the run directory.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--dry-run", is_flag=True, help="Check config, data and device, say what would run, and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines.")
def train(config_name, data, out, device, seed, overrides, resume, overwrite, print_config, dry_run, quiet) -> None:
    """Train a model and write checkpoints to a run directory.

    Ctrl-C (or SIGTERM) saves last.pt and prints the command that resumes the run.
    Under torchrun, the processes train one model together (DistributedDataParallel) and rank 0 writes.

    \b
    Examples:
      dinogen train
      dinogen train -c lstm -o checkpoints/my-lstm --set model.hidden_size=128
      dinogen train --data names.txt --device cuda --seed 1
      dinogen train --resume checkpoints/default --set train.epochs=40
      torchrun --standalone --nproc-per-node 2 -m dinogen train -c names --data names.txt
    """
    from dinogen.config import find_config, load_config
    from dinogen.distributed import joined_world
    from dinogen.run import Run

    context = click.get_current_context()
    if resume and any(context.get_parameter_source(p).name != "DEFAULT" for p in ("config_name", "out", "overwrite")):
        raise click.UsageError(
            "--resume continues a run with its saved config and directory; drop -c/--out/--overwrite"
        )
    explicit = {"data.path": data, "train.device": device, "train.seed": seed}
    overrides = [*overrides, *(f"{key}={value}" for key, value in explicit.items() if value is not None)]
    world = context.with_resource(joined_world())  # the process group stays open until the command ends
    quiet = quiet or not world.is_main  # rank 0 alone reports
    if resume:
        run = Run.resume(resume, overrides, world)
        config = run.config
    else:
        config_path = find_config(config_name)
        config = load_config(config_path, overrides)
    if print_config:
        if world.is_main:
            click.echo(config.to_yaml(), nl=False)
        return
    if not resume:
        run = Run(config, out or Path("checkpoints") / config_path.stem, world=world)
        if dry_run:
            run.check_dir(overwrite)
        else:
            run.prepare_dir(overwrite)
    trainer = run.trainer
    if resume and trainer.total_steps is not None and trainer.step >= trainer.total_steps:
        _log(
            quiet,
            f"nothing to do: {run.run_dir} is at step {trainer.step} of {trainer.total_steps}; "
            "raise the budget, e.g. --set train.epochs=N or train.max_steps=N",
        )
        return
    _log(quiet, _describe(run, "would train" if dry_run else "resuming" if resume else "training"))
    if dry_run:
        return
    reason, signum = _fit_with_progress(run, quiet)
    if signum:
        last = run.run_dir / "last.pt"
        _log(
            not world.is_main,
            f"interrupted at step {run.trainer.step}; saved {last}. Resume with: dinogen train --resume {run.run_dir}",
        )
        sys.exit(128 + signum)
    best = run.trainer.best_val_loss
    summary = f"best validation loss {best:.4f} nats/char; " if best != float("inf") else ""
    _log(quiet, f"stopped: {reason}; {summary}checkpoints in {run.run_dir}; try: dinogen sample {run.run_dir}")


def _describe(run, action: str) -> str:
    """One line on what is about to train: model, data, budget, device and directory."""
    trainer = run.trainer
    budget = f"{trainer.total_steps:,} steps" if trainer.total_steps else f"{run.config.train.max_time:g} s"
    processes = f" x {run.world.size} processes" if run.world.size > 1 else ""
    return (
        f"{action} {run.config.model.cell} ({run.model.num_parameters():,} parameters) on "
        f"{len(run.train_names):,} names from {run.data_path}, {len(run.val_names):,} held out; "
        f"{trainer.steps_per_epoch:,} batch{'es' * (trainer.steps_per_epoch != 1)} per epoch, {budget}; "
        f"device {run.device}{f' in {trainer.precision}' * (trainer.precision != 'fp32')}{processes}; "
        f"run directory {run.run_dir}"
    )


def _fit_with_progress(run, quiet: bool) -> tuple[str, int]:
    """Train with a tqdm bar on stderr (a log line per evaluation when stderr is not a terminal).

    SIGINT and SIGTERM ask the trainer to stop after the current step (under torchrun, all ranks stop at
    the same step); returns why training stopped and the signal that stopped it (0 if none).
    """
    import signal

    from tqdm import tqdm

    trainer = run.trainer
    received = []

    def request_stop(signum, frame) -> None:
        received.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

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
            _log(
                quiet,
                f"step {evaluation.step}/{trainer.total_steps or '-'} "
                + " ".join(f"{k} {v}" for k, v in shown.items()),
            )

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with bar:
            reason = run.fit(
                on_step=lambda step: bar.update(done() - bar.n),
                on_evaluation=on_evaluation,
                should_stop=lambda: bool(received),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if reason == "interrupted" and not received:
        received.append(signal.SIGTERM)  # another rank was signalled: stop as torchrun's SIGTERM would
    return reason, received[0] if received else 0


class _Shard(click.ParamType):
    """K/M: shard K (counting from 0) of M, M at most MAX_NAMES."""

    name = "K/M"
    form = re.compile(r"\s*([0-9]{1,10})\s*/\s*([0-9]{1,10})\s*")  # ASCII digits: int() reads them all

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        match = self.form.fullmatch(str(value))
        if not match:
            self.fail(f"{shorten(repr(value))} is not of the form K/M, e.g. 0/4", param, ctx)
        k, m = map(int, match.groups())
        if not 0 <= k < m <= MAX_NAMES:
            self.fail(f"{value!r} needs 0 <= K < M <= {MAX_NAMES:,}", param, ctx)
        return k, m


class _Number(click.FloatRange):
    """A FloatRange that also refuses nan, which no comparison with a bound would catch."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{shorten(repr(value))} is not a number", param, ctx)
        return number


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option(
    "-n", "--num", "n", type=click.IntRange(1, MAX_NAMES), default=10, show_default=True, help="How many names."
)
@click.option(
    "-t",
    "--temperature",
    type=_Number(0, 100),
    default=1.0,
    show_default=True,
    help="Sampling temperature, 0 to 100; 0 is greedy (always the likeliest character).",
)
@click.option("--top-k", type=click.IntRange(1, MAX_TOP_K), help="Sample only among the K likeliest characters.")
@click.option(
    "--top-p",
    type=_Number(0, 1, min_open=True),
    help="Sample only among the likeliest characters whose probabilities reach P.",
)
@click.option("--prefix", default="", help="Every name starts with this text.")
@click.option(
    "--min-length",
    type=click.IntRange(1, MAX_NAME_LENGTH),
    default=1,
    show_default=True,
    help="Shortest name, prefix included.",
)
@click.option(
    "--max-length",
    type=click.IntRange(1, MAX_NAME_LENGTH),
    help="Longest name, prefix included [default: twice the longest training name]; longer ones are dropped.",
)
@click.option("--unique", is_flag=True, help="No name twice.")
@click.option("--novel", is_flag=True, help="No name from the names file the model learned from.")
@click.option("--exclude", type=click.Path(), help="No name listed in this file.")
@click.option("--seed", type=int, help="Random seed (any integer, taken modulo 2^64): the same seed, the same names.")
@click.option("--shard", type=_Shard(), help="Write only shard K of M of the seed's stream (needs --seed).")
@click.option("--most-likely", is_flag=True, help="The N names the model finds likeliest, likeliest first.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    help="Names generated per batch [default: 4096 on a CPU, 65536 on a GPU]; it never changes the names.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "jsonl", "csv"]),
    default="text",
    show_default=True,
    help="text: one name per line; jsonl/csv add log_prob, nll_per_char and length.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (atomically) instead of stdout."
)
def sample(
    checkpoint,
    n,
    temperature,
    top_k,
    top_p,
    prefix,
    min_length,
    max_length,
    unique,
    novel,
    exclude,
    seed,
    shard,
    most_likely,
    batch_size,
    device,
    fmt,
    output,
) -> None:
    """Write new names from a trained model.

    CHECKPOINT is a .pt file or a run directory (its best.pt) [default: checkpoints/default].
    Exits with status 3 when the filters leave fewer than N names.

    \b
    Examples:
      dinogen sample -n 20 --temperature 0.8
      dinogen sample checkpoints/lstm --prefix tyr --top-k 5
      dinogen sample -n 100000 --unique --novel --format jsonl -o names.jsonl
      dinogen sample -n 1000000 --seed 7 --shard 0/2 -o part0.txt   # and --shard 1/2 elsewhere
      dinogen sample --most-likely -n 20 --novel
    """
    from dinogen.data import read_names
    from dinogen.output import atomic_text_file, write_names
    from dinogen.sample import NotEnoughNames

    if shard and seed is None:
        raise click.UsageError("--shard needs --seed, so that every shard draws from the same stream")
    if most_likely:
        context = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("temperature", "top_k", "top_p", "shard")
                 if context.get_parameter_source(name).name != "DEFAULT"]  # fmt: skip
        if given:
            raise click.UsageError(f"--most-likely ranks names by the model's own probability; drop {', '.join(given)}")
    generator = _generator(checkpoint, device)
    excluded = read_names(exclude, lowercase=generator.lowercase) if exclude else ()
    records = generator.iter_sample(
        n,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        prefix=prefix,
        min_length=min_length,
        max_length=max_length,
        unique=unique,
        novel=novel,
        exclude=excluded,
        seed=seed,
        batch_size=batch_size,
        shard=shard,
        most_likely=most_likely,
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


@main.command()
@click.argument("args", nargs=-1, metavar="[CHECKPOINT] [NAME]...")
@click.option("-f", "--file", "names_file", type=click.Path(), help="Score the names in this file too.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl", "csv"]), default="text", show_default=True)
@click.option("--sort", is_flag=True, help="Most likely names first.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
def score(args, names_file, fmt, sort, device) -> None:
    """How likely the model finds each name: log-probability and loss per character.

    The first argument is taken as the checkpoint when it is a .pt file or a directory
    [default: checkpoints/default]. A name with a character the model never saw is impossible:
    log_prob -inf, nll_per_char inf. The text format prints: nll_per_char, log_prob, name.

    \b
    Examples:
      dinogen score tyrannosaurus velociraptor
      dinogen score checkpoints/lstm --file candidates.txt --sort --format csv
    """
    from dinogen.data import read_names
    from dinogen.output import write_names

    checkpoint = None
    if args and (args[0].endswith(".pt") or os.path.isdir(args[0])):
        checkpoint, args = args[0], args[1:]
    generator = _generator(checkpoint, device)
    names = list(args)
    too_long = next((name for name in names if len(name) > MAX_NAME_LENGTH), None)
    if too_long:
        raise click.UsageError(
            f"a name to score has {len(too_long):,} characters, more than the {MAX_NAME_LENGTH:,} dinogen handles"
        )
    if names_file:
        names += read_names(names_file, lowercase=generator.lowercase)
    if not names:
        raise click.UsageError("give names to score as arguments or with --file")
    scores = generator.score(names, sort=sort)
    if fmt == "text":
        for s in scores:
            click.echo(f"{s.nll_per_char:.4f}\t{s.log_prob:.4f}\t{s.name}")
    else:
        write_names(scores, sys.stdout, fmt)


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option(
    "--data",
    type=click.Path(),
    help="Names to measure the loss on [default: the checkpoint's validation names].",
)
@click.option(
    "--samples",
    type=click.IntRange(1, MAX_SAMPLES),
    default=1000,
    show_default=True,
    help="Names to sample for novelty, uniqueness and length.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed for the samples (any integer, modulo 2^64)."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def evaluate(checkpoint, data, samples, seed, device, fmt) -> None:
    """Loss (nats/char, bits/char, perplexity) on held-out names, and novelty, uniqueness
    and length of sampled names.

    \b
    Examples:
      dinogen evaluate
      dinogen evaluate checkpoints/lstm --data test_names.txt --format json
    """
    from dinogen.data import read_names
    from dinogen.evaluate import evaluate as run_evaluation
    from dinogen.output import to_json
    from dinogen.sample import Generator

    loaded, target = _checkpoint(checkpoint, device)
    generator = Generator.from_loaded(loaded, target)
    names = read_names(data, lowercase=loaded.config.data.lowercase) if data else loaded.val_names
    report = run_evaluation(generator, names, samples=samples, seed=seed)
    if fmt == "json":
        click.echo(to_json(report.to_dict()))
        return
    source = data or "validation names"
    click.echo(f"loss          {report.loss:.4f} nats/char, {report.bits_per_char:.4f} bits/char")
    click.echo(f"perplexity    {report.perplexity:.3f}")
    click.echo(f"measured on   {report.names:,} names, {report.chars:,} characters ({source})")
    click.echo(f"samples       {report.samples:,}: novelty {report.novelty:.1%}, uniqueness {report.uniqueness:.1%}")
    click.echo(
        f"mean length   {report.sample_mean_length:.2f} sampled, {report.train_mean_length:.2f} in training names"
    )


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def info(checkpoint, fmt) -> None:
    """What a checkpoint holds: model, data, training progress and versions.

    \b
    Examples:
      dinogen info
      dinogen info checkpoints/lstm/last.pt --format json
    """
    from dinogen.checkpoint import resolve_checkpoint_path
    from dinogen.output import to_json

    loaded, _ = _checkpoint(checkpoint, "cpu")
    summary = {"checkpoint": str(resolve_checkpoint_path(_checkpoint_path(checkpoint))), **loaded.summary()}
    if fmt == "json":
        click.echo(to_json(summary))
        return
    width = max(map(len, summary))
    for key, value in summary.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        shown = f"{value:.4f}" if isinstance(value, float) else shown
        click.echo(f"{key:<{width}}  {shown}")


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="loss.png",
    show_default=True,
    help="Image file to write.",
)
def plot(run_dirs, output) -> None:
    """Train and validation loss against step, with the learning rate below, for one or more
    runs overlaid [default run: checkpoints/default]. Needs matplotlib: pip install 'dinogen[plot]'.

    \b
    Examples:
      dinogen plot
      dinogen plot checkpoints/rnn checkpoints/gru checkpoints/lstm -o cells.png
    """
    from dinogen.plot import plot_runs

    plot_runs(list(run_dirs) or [_checkpoint_path(None)], output)
    click.echo(f"wrote {output}", err=True)


def _checkpoint(path: str | None, device: str):
    """The checkpoint at `path` (default: checkpoints/default) loaded onto `device`, and the device."""
    from dinogen.checkpoint import load_checkpoint
    from dinogen.device import resolve_device

    target = resolve_device(device)
    return load_checkpoint(_checkpoint_path(path), map_location=target), target


def _checkpoint_path(path: str | None) -> str | Path:
    if path is not None:
        return path
    if not DEFAULT_RUN.exists():
        raise DinogenError(f"no checkpoint given and {DEFAULT_RUN} does not exist; run `dinogen train` first")
    return DEFAULT_RUN


def _generator(checkpoint: str | None, device: str):
    from dinogen.sample import Generator

    return Generator.from_loaded(*_checkpoint(checkpoint, device))


def _progress(records, total: int, output: str | None):
    """A tqdm bar on stderr when writing to a file from a terminal; the bare iterator otherwise."""
    if output is None or not sys.stderr.isatty():
        return records
    from tqdm import tqdm

    return tqdm(records, total=total, unit="name", file=sys.stderr, dynamic_ncols=True)


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)
