"""`dinogen evaluate`, `info` and `plot`: how good a model is, what a checkpoint holds, and its learning curves."""

from pathlib import Path

import click

from dinogen.cli.common import DEVICE_OPTION, PathText, checkpoint_path, global_options, loaded_checkpoint
from dinogen.formats import REPORT_FORMATS
from dinogen.limits import MAX_SAMPLES


@click.command()
@click.argument("checkpoint", required=False, type=PathText())
@click.option(
    "--data",
    type=PathText(),
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
    and length of sampled names; for a labelled model, for each label too.

    \b
    Examples:
      dinogen evaluate
      dinogen evaluate checkpoints/lstm --data test_names.txt --format json
    """
    from dinogen.data import read_labelled_names
    from dinogen.evaluate import evaluate as run_evaluation
    from dinogen.formats import plural, to_json
    from dinogen.output import standard_output
    from dinogen.sample import Generator

    loaded, target = loaded_checkpoint(checkpoint, device)
    generator = Generator.from_loaded(loaded, target)
    labels_of = (lambda ids: [loaded.labels[i] for i in ids]) if loaded.labels else (lambda ids: None)
    if data:
        names, labels = read_labelled_names(data, lowercase=loaded.lowercase)
        labels = labels if loaded.labels else None  # an unlabelled model's loss does not depend on labels
        names = names if labels is not None else list(dict.fromkeys(names))
    else:
        names, labels = loaded.val_names, labels_of(loaded.val_label_ids or ())
    train_labels = labels_of(loaded.train_label_ids or ())
    report = run_evaluation(generator, names, samples, seed, labels, loaded.train_names, train_labels)
    source = "standard input" if data == "-" else data or "validation names"
    lines = [to_json(report.to_dict())] if fmt == "json" else [
        f"loss          {report.loss:.4f} nats/char, {report.bits_per_char:.4f} bits/char",
        f"perplexity    {report.perplexity:.3f}",
        f"measured on   {plural(report.names, 'name')}, {plural(report.chars, 'character')} ({source})",
        f"samples       {report.samples:,}: novelty {report.novelty:.1%}, uniqueness {report.uniqueness:.1%}",
        f"mean length   {report.sample_mean_length:.2f} sampled, {report.train_mean_length:.2f} in training names",
        *([] if report.labels is None else ["", *_label_table(report)]),
    ]  # fmt: skip
    with standard_output() as stdout:
        stdout.write("".join(line + "\n" for line in lines))


def _label_table(report) -> list[str]:
    """The figures of each label, and of all of them, one row each; a dash where a label has no names or samples."""
    from dinogen.evaluate import Report

    def cell(value: float, form: str) -> str:
        return "-" if value != value else format(value, form)  # NaN: nothing to measure

    def row(label: str, figures: Report) -> list[str]:
        return [label, f"{figures.names:,}", cell(figures.loss, ".4f"), cell(figures.bits_per_char, ".4f"),
                cell(figures.perplexity, ".3f"), f"{figures.samples:,}", cell(figures.novelty, ".1%"),
                cell(figures.uniqueness, ".1%"), cell(figures.sample_mean_length, ".2f"),
                cell(figures.train_mean_length, ".2f")]  # fmt: skip

    header = ["label", "names", "loss", "bits/char", "perplexity", "samples", "novelty", "uniqueness",
              "sampled length", "training length"]  # fmt: skip
    rows = [header, *(row(figures.label, figures) for figures in report.labels), row("all", report)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            for cells in rows]  # fmt: skip


@click.command()
@click.argument("checkpoint", required=False, type=PathText())
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
            if isinstance(value, dict):  # the labels, with their training names
                shown = ", ".join(f"{label} ({count:,})" for label, count in value.items())
            stdout.write(f"{key:<{width}}  {shown}\n")


@click.command()
@click.argument("run_dirs", nargs=-1, type=PathText(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=PathText(dir_okay=False),
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
