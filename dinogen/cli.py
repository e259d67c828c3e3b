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
from dinogen.errors import DinogenError, shorten
from dinogen.limits import MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES, MAX_SAMPLES, MAX_TOP_K

RUNS = Path("checkpoints")  # where `dinogen train` puts runs without -o, and where the other commands look
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
                error = click.ClickException(str(err))
                error.exit_code = err.exit_code
                raise error from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as err:
                if ctx.meta.get(_DEBUG):
                    raise
                raise unexpected_error(err) from None


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
    "-o",
    "--out",
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
    _use_the_free_cores()
    from dinogen.config import find_config, load_config
    from dinogen.distributed import joined_world
    from dinogen.output import standard_output
    from dinogen.run import Run, new_run_dir

    context = click.get_current_context()
    if resume and any(context.get_parameter_source(p).name != "DEFAULT" for p in ("config_name", "out", "overwrite")):
        raise click.UsageError(
            "--resume continues a run with its saved config and directory; drop -c/--out/--overwrite"
        )
    explicit = {"data.path": data, "train.device": device, "train.seed": seed}
    # JSON is YAML: quoted, a path such as "-" or "null" stays a string
    overrides = [*overrides, *(f"{key}={json.dumps(value)}" for key, value in explicit.items() if value is not None)]
    world = context.with_resource(joined_world())  # the process group stays open until the command ends
    quiet = quiet or not world.is_main  # rank 0 alone reports
    if resume:
        run = Run.resume(resume, overrides, world, write=not (dry_run or print_config))
        context.call_on_close(run.release)  # the run directory's lock, however the command ends
        config = run.config
    else:
        config_path = find_config(config_name)
        config = load_config(config_path, overrides)
    if print_config:
        if world.is_main:
            with standard_output() as stdout:
                stdout.write(config.to_yaml())
        return
    if not resume:
        # every rank must train into the directory rank 0 chose (a numbered one appears once rank 0 writes it)
        run_dir = world.main_choice(out or new_run_dir(RUNS, config_path.stem))
        run = Run(config, run_dir, world=world)
        context.call_on_close(run.release)  # the run directory's lock, however the command ends
        if dry_run:
            run.check_dir(overwrite)
        else:
            world.together(lambda: run.prepare_dir(overwrite))
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


def _use_the_free_cores() -> None:
    """Train with as many threads as other programs leave cores idle, unless OMP_NUM_THREADS says otherwise.

    torch starts one thread per core, and its threads wait for each other at every small step; when another
    program holds a core, the thread queued behind it holds up the rest (training ran 26x slower beside one
    busy process, and 1 thread fewer brings it back). Read before torch is imported, which sets its threads.
    """
    from dinogen.cpu import free_cores

    if "OMP_NUM_THREADS" in os.environ:
        return
    free = free_cores()
    if free is not None and free < len(os.sched_getaffinity(0)):
        os.environ["OMP_NUM_THREADS"] = str(free)


def _describe(run, action: str) -> str:
    """One line on what is about to train: model, data, budget, device and directory."""
    trainer = run.trainer
    budget = f"{trainer.total_steps:,} steps" if trainer.total_steps else f"{run.config.train.max_time:g} s"
    processes = f" x {run.world.size} processes" if run.world.size > 1 else ""
    return (
        f"{action} {_ensemble(run.config.model.ensemble)}{run.config.model.cell} "
        f"({run.model.num_parameters():,} parameters) on "
        f"{_count(len(run.train_names), 'name')} from {run.data_path}, {len(run.val_names):,} held out; "
        f"{_count(trainer.steps_per_epoch, 'batch', 'batches')} of {trainer.config.batch_size:,} per epoch, {budget}; "
        f"device {run.device}{f' in {trainer.precision}' * (trainer.precision != 'fp32')}{processes}; "
        f"run directory {run.run_dir}"
    )


def _ensemble(members: int) -> str:
    return f"an ensemble of {members} " if members > 1 else ""


def _count(number: int, singular: str, plural: str = "") -> str:
    """'1 name', '2 names', '1,453 names'."""
    return f"{number:,} {singular if number == 1 else plural or singular + 's'}"


def _fit_with_progress(run, quiet: bool) -> tuple[str, int]:
    """Train with a tqdm bar on stderr (a log line per evaluation when stderr is not a terminal).

    SIGINT and SIGTERM ask the trainer to stop after the current step (under torchrun, all ranks stop at
    the same step); returns why training stopped and the signal that stopped it (0 if none).
    """
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
@_global_options
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

    CHECKPOINT is a .pt file or a run directory (its best.pt) [default: the latest run in checkpoints/].
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
    from dinogen.output import output_file, standard_output, write_names
    from dinogen.sample import NotEnoughNames

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
    with output_file(output) if output else standard_output() as file:
        try:
            total = n if shard is None else len(range(shard[0], n, shard[1]))  # this shard's share
            write_names(_progress(records, total, output), file, fmt)
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
    from dinogen.output import standard_output, write_names

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
    with standard_output() as stdout:
        if fmt != "text":
            write_names(scores, stdout, fmt)
        for s in scores if fmt == "text" else ():
            stdout.write(f"{s.nll_per_char:.4f}\t{s.log_prob:.4f}\t{s.name}\n")


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
    from dinogen.output import standard_output, to_json
    from dinogen.sample import Generator

    loaded, target = _checkpoint(checkpoint, device)
    generator = Generator.from_loaded(loaded, target)
    names = read_names(data, lowercase=loaded.config.data.lowercase) if data else loaded.val_names
    report = run_evaluation(generator, names, samples=samples, seed=seed)
    source = "standard input" if data == "-" else data or "validation names"
    lines = [to_json(report.to_dict())] if fmt == "json" else [
        f"loss          {report.loss:.4f} nats/char, {report.bits_per_char:.4f} bits/char",
        f"perplexity    {report.perplexity:.3f}",
        f"measured on   {_count(report.names, 'name')}, {_count(report.chars, 'character')} ({source})",
        f"samples       {report.samples:,}: novelty {report.novelty:.1%}, uniqueness {report.uniqueness:.1%}",
        f"mean length   {report.sample_mean_length:.2f} sampled, {report.train_mean_length:.2f} in training names",
    ]  # fmt: skip
    with standard_output() as stdout:
        stdout.write("".join(line + "\n" for line in lines))


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_global_options
def info(checkpoint, fmt) -> None:
    """What a checkpoint holds: model, data, training progress and versions.

    \b
    Examples:
      dinogen info
      dinogen info checkpoints/lstm/last.pt --format json
    """
    from dinogen.checkpoint import load_checkpoint, resolve_checkpoint_path
    from dinogen.output import standard_output, to_json

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


@main.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "html"]),
    help="onnx: one step of the network, for onnxruntime (needs pip install 'dinogen[export]'); "
    "html: a web page that writes names [default: html for a .html output, else onnx].",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="File to write [default: model.onnx, or names.html]."
)
@_global_options
def export(checkpoint, fmt, output) -> None:
    """Write the model for use outside Python: an ONNX graph of one step (and its .json description),
    or one self-contained web page [default checkpoint: the latest run in checkpoints/].

    \b
    Examples:
      dinogen export checkpoints/default -o model.onnx
      dinogen export checkpoints/default --format html -o names.html
    """
    from dinogen.export import export_model

    for path in export_model(_checkpoint_path(checkpoint), output, fmt):
        click.echo(f"wrote {path}", err=True)


def _checkpoint(path: str | None, device: str):
    """The checkpoint at `path` (default: the latest run) loaded onto `device`, and the device."""
    from dinogen.checkpoint import load_checkpoint
    from dinogen.device import resolve_device

    target = resolve_device(device)
    return load_checkpoint(_checkpoint_path(path), map_location=target), target


def _checkpoint_path(path: str | None) -> str | Path:
    """`path` as given, or the run `dinogen train` wrote last (a note says which, when there are several)."""
    from dinogen.run import run_dirs

    if path is not None:
        return path
    runs = run_dirs(RUNS)
    if not runs:
        raise DinogenError(f"no checkpoint given and no run in {RUNS}/ yet; run `dinogen train` first")
    if len(runs) > 1:
        click.echo(
            f"using {runs[-1]}, the latest of {len(runs)} runs in {RUNS}/ (name one to choose another)", err=True
        )
    return runs[-1]


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
