"""`dinogen evaluate`, `info` and `plot`: how good a model is, what a checkpoint holds, and its learning curves."""

from pathlib import Path

import click

from dinogen.cli.common import DEVICE_OPTION, checkpoint_path, global_options, loaded_checkpoint
from dinogen.formats import REPORT_FORMATS
from dinogen.limits import MAX_SAMPLES


@click.command()
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
@DEVICE_OPTION
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@global_options
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

    loaded, target = loaded_checkpoint(checkpoint, device)
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


@click.command()
@click.argument("checkpoint", required=False, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True)
@global_options
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

    path = checkpoint_path(checkpoint)
    summary = {"checkpoint": str(resolve_checkpoint_path(path)), **load_checkpoint(path).summary()}
    width = max(map(len, summary))
    with standard_output() as stdout:
        if fmt == "json":
            stdout.write(to_json(summary) + "\n")
        for key, value in summary.items() if fmt == "text" else ():
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            shown = f"{value:.4f}" if isinstance(value, float) else shown
            stdout.write(f"{key:<{width}}  {shown}\n")


@click.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Image file to write (.png, .svg, .pdf) [default: loss.png in the (first) run directory].",
)
@global_options
def plot(run_dirs, output) -> None:
    """Train and validation loss, the gradient norm (log scale, with the clip threshold) and the learning
    rate against step, for one or more runs overlaid [default run: the latest in checkpoints/].
    Needs matplotlib: pip install 'dinogen[plot]'.

    \b
    Examples:
      dinogen plot
      dinogen plot checkpoints/rnn checkpoints/gru checkpoints/lstm -o cells.png
    """
    from dinogen.plot import plot_runs

    run_dirs = list(run_dirs) or [checkpoint_path(None, bundled=False)]
    output = output or Path(run_dirs[0]) / "loss.png"
    plot_runs(run_dirs, output)
    click.echo(f"wrote {output}", err=True)
