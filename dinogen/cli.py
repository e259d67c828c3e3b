"""The `dinogen` command line: parse options, call the library, print results.

Heavy modules (torch and everything using it) are imported inside the commands, so that
`dinogen --help` and `--version` answer at once.
"""

import json
import math
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import click

from dinogen import __version__
from dinogen.errors import DinogenError, OptionError, shorten
from dinogen.formats import NAME_FORMATS, REPORT_FORMATS
from dinogen.limits import MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES, MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOP_K

_VERBOSE, _DEBUG = "dinogen.verbose", "dinogen.debug"  # keys of click's ctx.meta, shared by all nested contexts


class _Group(click.Group):
    """Turns the library's errors into one sentence on stderr with their exit code, and signals into 130/143."""

    def invoke(self, ctx: click.Context):
        with _sigterm_raises():
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM: finally-blocks have run, temporary files are gone
                sys.exit(128 + getattr(stop, "signum", signal.SIGINT))
            except BrokenPipeError:
                from dinogen.output import silence_stdout

                # The reader went away (`dinogen sample | head`): stop quietly, as Unix tools do.
                silence_stdout()  # no error when Python flushes stdout
                sys.exit(128 + signal.SIGPIPE)  # as if killed by SIGPIPE
            except DinogenError as err:
                if ctx.meta.get(_DEBUG):
                    raise
                spell = _spelling(self.commands.get(ctx.invoked_subcommand or ""))
                error = click.ClickException(err.spelled(spell) if isinstance(err, OptionError) else str(err))
                error.exit_code = err.exit_code
                raise error from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as err:
                if ctx.meta.get(_DEBUG):
                    raise
                raise unexpected_error(err) from None


# How the command line spells the library's keywords where the longest option is not the clearest.
_SPELLED = {"config": "-c", "n": "-n"}


def _spelling(command: click.Command | None):
    """The option a library keyword is given with in `command` (top_k: --top-k); other words stay as they are."""
    options = {
        param.name: _SPELLED.get(param.name, max(param.opts, key=len))
        for param in (command.params if command else ())
        if isinstance(param, click.Option)
    }
    return lambda keyword: options.get(keyword, keyword)


def unexpected_error(err: Exception) -> click.ClickException:
    """The last line of defence: a bug's exception as one sentence (the tests fail if any of their inputs get here)."""
    message = " ".join(str(err).split())
    message = message if len(message) <= 200 else message[:200] + "..."
    return click.ClickException(f"unexpected {type(err).__name__}: {message}; run with --debug for the traceback")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the command unwinds the same way."""

    signum = signal.SIGTERM


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


@contextmanager
def _sigterm_raises():
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _set_verbose(ctx: click.Context, param, value: bool) -> None:
    if value:
        ctx.meta[_VERBOSE] = True
        _configure_logging(True)


def _set_debug(ctx: click.Context, param, value: bool) -> None:
    if value:
        ctx.meta[_DEBUG] = True


def _global_options(function):
    """-v and --debug, accepted before the command (`dinogen -v train`) and after it (`dinogen train -v`)."""
    function = click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                            help="Show a full traceback on errors.")(function)  # fmt: skip
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
                        help="Debug logging on stderr.")(function)  # fmt: skip


def _configure_logging(verbose: bool) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("dinogen")
    logger.handlers = [handler]  # replaces the handler of an earlier call in the same process
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dinogen")
@_global_options
@click.pass_context
def main(ctx: click.Context) -> None:
    """Learn what names of a kind look like, and write new ones.

    \b
    Examples:
      dinogen train                          # the default GRU on the bundled dinosaur list
      dinogen sample -n 20 --temperature 0.8
      dinogen train -c lstm --set train.epochs=5 --data my_names.txt
    """
    _configure_logging(ctx.meta.get(_VERBOSE, False))


@main.command()
@click.argument("names_file", required=False, type=click.Path(), metavar="[NAMES_FILE]")
@click.option(
    "-d", "--data", help="Names file, one per line, - for standard input (sets data.path); or give it as NAMES_FILE."
)
@click.option(
    "-c",
    "--config",
    help="YAML config file, or the name of a bundled config (default, gru, lstm, rnn, names, tiny) [default: default].",
)
@click.option(
    "-o",
    "--out",
    "run_dir",
    type=click.Path(file_okay=False),
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
@click.option("--resume", type=click.Path(), help="Continue the run in this directory (or from this checkpoint).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run in the run directory.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
@click.option("--dry-run", is_flag=True, help="Check config, data and device, say what would run, and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or log lines.")
@_global_options
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
        _log(
            quiet,
            f"nothing to do: {run.run_dir} is at step {run.trainer.step} of {run.trainer.total_steps}; "
            "raise the budget, e.g. --set train.epochs=N or train.max_steps=N",
        )
        return
    _log(quiet, run.describe("would train" if dry_run else "resuming" if resume else "training"))
    if dry_run:
        return
    reason = _fit_with_progress(run, quiet)
    if run.signal:
        last = run.run_dir / "last.pt"
        _log(
            not run.world.is_main,
            f"interrupted at step {run.trainer.step}; saved {last}. Resume with: dinogen train --resume {run.run_dir}",
        )
        sys.exit(128 + run.signal)
    best = run.trainer.best_val_loss
    summary = f"best validation loss {best:.4f} nats/char; " if best != float("inf") else ""
    _log(quiet, f"stopped: {reason}; {summary}checkpoints in {run.run_dir}; try: dinogen sample {run.run_dir}")


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
            _log(quiet, steps + " ".join(f"{k} {v}" for k, v in shown.items()))

    with bar:
        return run.fit(on_step=lambda step: bar.update(done() - bar.n), on_evaluation=on_evaluation)


class _Shard(click.ParamType):
    """K/M: shard K (counting from 0) of M; the library checks the numbers."""

    name = "K/M"
    form = re.compile(r"\s*([0-9]{1,10})\s*/\s*([0-9]{1,10})\s*")  # ASCII digits: int() reads them all

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        match = self.form.fullmatch(str(value))
        if not match:
            self.fail(f"{shorten(repr(value))} is not of the form K/M, e.g. 0/4", param, ctx)
        return tuple(map(int, match.groups()))


class _Number(click.FloatRange):
    """A FloatRange that also refuses nan, which no comparison with a bound would catch."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{shorten(repr(value))} is not a number", param, ctx)
        return number


_DEVICE = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option(
    "-n", "--num", "n", type=click.IntRange(1, MAX_NAMES), default=10, show_default=True, help="How many names."
)
@click.option(
    "-t",
    "--temperature",
    type=_Number(0, MAX_TEMPERATURE),
    show_default="1.0",
    help=f"Sampling temperature, 0 to {MAX_TEMPERATURE:g}; 0 is greedy (always the likeliest character).",
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
@click.option(
    "--shard",
    type=_Shard(),
    help="Write only shard K of M of the seed's stream (needs --seed): its names K, K+M, K+2M, ... in that order. "
    "The M shards' files interleaved line by line, paste -d '\\n' part0.txt part1.txt ..., give the one-process order.",
)
@click.option("--most-likely", is_flag=True, help="The N names the model finds likeliest, likeliest first.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    help="Names generated per batch [default: 4096 on a CPU, 65536 on a GPU]; it never changes the names.",
)
@_DEVICE
@click.option(
    "--format",
    "fmt",
    type=click.Choice(NAME_FORMATS),
    default="text",
    show_default=True,
    help="text: one name per line; jsonl/csv add log_prob, nll_per_char and length.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (atomically) instead of stdout."
)
@_global_options
def sample(checkpoint, exclude, device, fmt, output, **options) -> None:
    """Write new names from a trained model.

    CHECKPOINT is a .pt file or a run directory (its best.pt) [default: the latest run in checkpoints/].
    Names keep the case of the names the model learned from (a list without capitals is read, and
    written, in lowercase). Exits with status 3 when the filters leave fewer than N names.

    \b
    Examples:
      dinogen sample -n 20 --temperature 0.8
      dinogen sample checkpoints/lstm --prefix tyr --top-k 5
      dinogen sample -n 100000 --unique --novel --format jsonl -o names.jsonl
      dinogen sample -n 1000000 --seed 7 --shard 0/2 -o part0.txt   # and --shard 1/2 elsewhere
      dinogen sample --most-likely -n 20 --novel
    """
    from dinogen.controls import shard_share
    from dinogen.data import read_names
    from dinogen.formats import write_names
    from dinogen.output import output_file, standard_output
    from dinogen.sample import NotEnoughNames

    generator = _generator(checkpoint, device)
    excluded = read_names(exclude, lowercase=generator.lowercase) if exclude else ()
    records = generator.iter_sample(exclude=excluded, **options)
    if output is not None and sys.stderr.isatty():  # a progress bar while names go to a file
        from tqdm import tqdm

        total = shard_share(options["n"], options["shard"], options["seed"])
        records = tqdm(records, total=total, unit="name", file=sys.stderr, dynamic_ncols=True)
    shortfall = None
    with output_file(output) if output else standard_output() as file:
        try:
            write_names(records, file, fmt)
        except NotEnoughNames as err:
            shortfall = err  # keep what was found; report after the file is in place
    if shortfall:
        click.echo(f"Warning: {shortfall}", err=True)
        sys.exit(shortfall.exit_code)


@main.command()
@click.argument("args", nargs=-1, metavar="[CHECKPOINT] [NAME]...")
@click.option("-f", "--file", "names_file", type=click.Path(), help="Score the names in this file too.")
@click.option("--format", "fmt", type=click.Choice(NAME_FORMATS), default="text", show_default=True)
@click.option("--sort", is_flag=True, help="Most likely names first.")
@_DEVICE
@_global_options
def score(args, names_file, fmt, sort, device) -> None:
    """How likely the model finds each name: log-probability and loss per character.

    The first argument is taken as the checkpoint when it is a .pt file or a directory
    [default: the latest run in checkpoints/]; FILE may be - (standard input). A name with a character
    the model never saw is impossible: log_prob -inf, nll_per_char inf. The text format prints:
    nll_per_char, log_prob, name.

    \b
    Examples:
      dinogen score tyrannosaurus velociraptor
      dinogen score checkpoints/lstm --file candidates.txt --sort --format csv
    """
    from dinogen.data import read_names
    from dinogen.formats import score_line, write_names
    from dinogen.output import standard_output

    checkpoint = None
    if args and (args[0].endswith(".pt") or os.path.isdir(args[0])):
        checkpoint, args = args[0], args[1:]
    generator = _generator(checkpoint, device)
    names = list(args)
    if names_file:
        names += read_names(names_file, lowercase=generator.lowercase)
    if not names:
        raise click.UsageError("give names to score as arguments or with --file")
    scores = generator.score(names, sort=sort)
    with standard_output() as stdout:
        write_names(scores, stdout, fmt, text=score_line)


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
@_DEVICE
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@_global_options
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
    from dinogen.formats import plural, to_json
    from dinogen.output import standard_output
    from dinogen.sample import Generator

    loaded, target = _checkpoint(checkpoint, device)
    generator = Generator.from_loaded(loaded, target)
    names = read_names(data, lowercase=loaded.lowercase) if data else loaded.val_names
    report = run_evaluation(generator, names, samples=samples, seed=seed)
    source = "standard input" if data == "-" else data or "validation names"
    lines = [to_json(report.to_dict())] if fmt == "json" else [
        f"loss          {report.loss:.4f} nats/char, {report.bits_per_char:.4f} bits/char",
        f"perplexity    {report.perplexity:.3f}",
        f"measured on   {plural(report.names, 'name')}, {plural(report.chars, 'character')} ({source})",
        f"samples       {report.samples:,}: novelty {report.novelty:.1%}, uniqueness {report.uniqueness:.1%}",
        f"mean length   {report.sample_mean_length:.2f} sampled, {report.train_mean_length:.2f} in training names",
    ]  # fmt: skip
    with standard_output() as stdout:
        stdout.write("".join(line + "\n" for line in lines))


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@_global_options
def info(checkpoint, fmt) -> None:
    """What a checkpoint holds: model, data, training progress and versions.

    \b
    Examples:
      dinogen info
      dinogen info checkpoints/lstm/last.pt --format json
    """
    from dinogen.checkpoint import load_checkpoint, resolve_checkpoint_path
    from dinogen.formats import to_json
    from dinogen.output import standard_output

    path = _checkpoint_path(checkpoint)
    summary = {"checkpoint": str(resolve_checkpoint_path(path)), **load_checkpoint(path).summary()}
    width = max(map(len, summary))
    with standard_output() as stdout:
        if fmt == "json":
            stdout.write(to_json(summary) + "\n")
        for key, value in summary.items() if fmt == "text" else ():
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            shown = f"{value:.4f}" if isinstance(value, float) else shown
            stdout.write(f"{key:<{width}}  {shown}\n")


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Image file to write (.png, .svg, .pdf) [default: loss.png in the (first) run directory].",
)
@_global_options
def plot(run_dirs, output) -> None:
    """Train and validation loss against step, with the learning rate below, for one or more
    runs overlaid [default run: the latest in checkpoints/]. Needs matplotlib: pip install 'dinogen[plot]'.

    \b
    Examples:
      dinogen plot
      dinogen plot checkpoints/rnn checkpoints/gru checkpoints/lstm -o cells.png
    """
    from dinogen.plot import plot_runs

    run_dirs = list(run_dirs) or [_checkpoint_path(None)]
    output = output or Path(run_dirs[0]) / "loss.png"
    plot_runs(run_dirs, output)
    click.echo(f"wrote {output}", err=True)


def _checkpoint(path: str | None, device: str):
    """The checkpoint at `path` (default: the latest run) loaded onto `device`, and the device."""
    from dinogen.checkpoint import load_checkpoint
    from dinogen.device import resolve_device

    target = resolve_device(device)
    return load_checkpoint(_checkpoint_path(path), map_location=target), target


def _checkpoint_path(path: str | None) -> str | Path:
    """`path` as given, or the run `dinogen train` wrote last (a note says which, when there are several)."""
    from dinogen.rundir import RUNS_ROOT, run_dirs

    if path is not None:
        return path
    runs = run_dirs(RUNS_ROOT)
    if not runs:
        raise DinogenError(f"no checkpoint given and no run in {RUNS_ROOT}/ yet; run `dinogen train` first")
    if len(runs) > 1:
        click.echo(
            f"using {runs[-1]}, the latest of {len(runs)} runs in {RUNS_ROOT}/ (name one to choose another)", err=True
        )
    return runs[-1]


def _generator(checkpoint: str | None, device: str):
    from dinogen.sample import Generator

    return Generator.from_loaded(*_checkpoint(checkpoint, device))


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)
