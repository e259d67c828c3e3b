"""`dinogen sample` and `dinogen score`: names from a model, and the model's opinion of names."""

import os
import sys

import click

from dinogen.cli.common import (
    DEVICE_OPTION,
    LABEL_HELP,
    LabelWeight,
    Number,
    PathText,
    Shard,
    generator_for,
    global_options,
    label_mix,
)
from dinogen.formats import NAME_FORMATS
from dinogen.limits import MAX_ATTEMPTS, MAX_BATCH_SIZE, MAX_NAME_LENGTH, MAX_NAMES, MAX_TEMPERATURE, MAX_TOP_K


def _length(flag: str, **settings):
    """A name-length option: 1 to MAX_NAME_LENGTH characters."""
    return click.option(flag, type=click.IntRange(1, MAX_NAME_LENGTH), **settings)


@click.command()
@click.argument("checkpoint", required=False, type=PathText())
@click.option(
    "-n", "--num", "n", type=click.IntRange(1, MAX_NAMES), default=10, show_default=True, help="How many names."
)
@click.option(
    "-t",
    "--temperature",
    type=Number(0, MAX_TEMPERATURE),
    show_default="1.0",
    help=f"Sampling temperature, 0 to {MAX_TEMPERATURE:g}; 0 is greedy (always the likeliest character).",
)
@click.option("--top-k", type=click.IntRange(1, MAX_TOP_K), help="Sample only among the K likeliest characters.")
@click.option(
    "--top-p",
    type=Number(0, 1, min_open=True),
    help="Sample only among the likeliest characters whose probabilities reach P.",
)
@click.option("--prefix", default="", help="Every name starts with this text.")
@_length("--min-length", default=1, show_default=True, help="Shortest name, prefix included.")
@_length(
    "--max-length",
    help="Longest name, prefix included [default: twice the longest training name]; longer ones are dropped.",
)
@click.option("--ends-with", help="Every name ends with this text.")
@click.option("--contains", multiple=True, help="Every name contains this text; repeatable: each must appear.")
@click.option(
    "--pattern",
    help="Every name, as a whole, matches this regular expression (literals, ., [a-z], *, +, ?, {m,n}, |, groups).",
)
@click.option(
    "--blocklist", type=PathText(), help="No name contains a text listed in this file (one per line; case ignored)."
)
@click.option(
    "--exact",
    is_flag=True,
    help="Meet the constraints by rejection: the model's own distribution given them (slower), not a masked draw.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1, MAX_ATTEMPTS),
    help="Stop after drawing this many samples [default: max(20 N, 40960)]; exit 3 with the names found.",
)
@click.option("--unique", is_flag=True, help="No name twice.")
@click.option("--novel", is_flag=True, help="No name from the names file the model learned from.")
@click.option("--exclude", type=PathText(), help="No name listed in this file.")
@click.option("--seed", type=int, help="Random seed (any integer, taken modulo 2^64): the same seed, the same names.")
@click.option(
    "--shard",
    type=Shard(),
    help="Write only shard K of M of the seed's stream (needs --seed): its names K, K+M, K+2M, ... in that order. "
    "The M shards' files interleaved line by line, paste -d '\\n' part0.txt part1.txt ..., give the one-process order.",
)
@click.option("--most-likely", is_flag=True, help="The N names the model finds likeliest, likeliest first.")
@click.option("--label", multiple=True, type=LabelWeight(), help=LABEL_HELP)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    help="Names generated per batch [default: 4096 on a CPU, 65536 on a GPU]; it never changes the names.",
)
@DEVICE_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(NAME_FORMATS),
    default="text",
    show_default=True,
    help="text: one name per line; jsonl/csv add log_prob, nll_per_char and length (and label, for a labelled model).",
)
@click.option(
    "-o", "--output", type=PathText(dir_okay=False), help="Write to this file (atomically) instead of stdout."
)
@global_options
def sample(checkpoint, exclude, blocklist, label, device, fmt, output, **options) -> None:
    """Write new names from a trained model.

    CHECKPOINT is a .pt file or a run directory (its best.pt) [default: the latest run in
    checkpoints/, or before any run the bundled dinosaur model].
    Names keep the case of the names the model learned from (a list without capitals is read, and
    written, in lowercase). Exits with status 3 when the filters leave fewer than N names.

    \b
    Examples:
      dinogen sample -n 20 --temperature 0.8
      dinogen sample checkpoints/lstm --prefix tyr --top-k 5
      dinogen sample -n 100000 --unique --novel --format jsonl -o names.jsonl
      dinogen sample -n 1000000 --seed 7 --shard 0/2 -o part0.txt   # and --shard 1/2 elsewhere
      dinogen sample --most-likely -n 20 --novel
      dinogen sample -n 20 --ends-with raptor --exact
      dinogen sample -n 20 --pattern '^[a-z]{4,8}(saurus|raptor)$' --blocklist rude.txt
      dinogen sample checkpoints/names -n 20 --label female --label male:3
    """
    from dinogen.controls import shard_share
    from dinogen.data import read_names
    from dinogen.formats import FIELDS, SAMPLE_LABEL_FIELDS, write_names
    from dinogen.output import output_file, standard_output
    from dinogen.sample import NotEnoughNames

    generator = generator_for(checkpoint, device)
    excluded = read_names(exclude, lowercase=generator.lowercase) if exclude is not None else ()
    blocked = read_names(blocklist, lowercase=generator.lowercase) if blocklist is not None else ()
    records = generator.iter_sample(exclude=excluded, blocklist=blocked, label=label_mix(label, generator.labels),
                                    **options)  # fmt: skip
    if output is not None and sys.stderr.isatty():  # a progress bar while names go to a file
        from tqdm import tqdm

        total = shard_share(options["n"], options["shard"], options["seed"])
        records = tqdm(records, total=total, unit="name", file=sys.stderr, dynamic_ncols=True)
    shortfall = None
    with output_file(output) if output else standard_output() as file:
        try:
            write_names(records, file, fmt, columns=FIELDS if generator.labels is None else SAMPLE_LABEL_FIELDS)
        except NotEnoughNames as err:
            shortfall = err  # keep what was found; report after the file is in place
    if shortfall:
        click.echo(f"Warning: {shortfall}", err=True)
        sys.exit(shortfall.exit_code)


@click.command()
@click.argument("args", nargs=-1, metavar="[CHECKPOINT] [NAME]...")
@click.option("-f", "--file", "names_file", type=PathText(), help="Score the names in this file too.")
@click.option("--format", "fmt", type=click.Choice(NAME_FORMATS), default="text", show_default=True)
@click.option("--sort", is_flag=True, help="Most likely names first.")
@click.option(
    "--label",
    multiple=True,
    type=LabelWeight(),
    help="Score for this label (repeatable: for a mix, LABEL:W weighing it) [default: a labelled model's labels in "
    "the proportions of its training names].",
)
@DEVICE_OPTION
@global_options
def score(args, names_file, fmt, sort, label, device) -> None:
    """How likely the model finds each name: log-probability and loss per character.

    The first argument is taken as the checkpoint when it is a .pt file or a directory
    [default: the latest run in checkpoints/, or before any run the bundled dinosaur model];
    FILE may be - (standard input). A name with a character
    the model never saw is impossible: log_prob -inf, nll_per_char inf. The text format prints:
    nll_per_char, log_prob, name. On a labelled model log_prob is log p(name | label), or for a mix
    (and without --label) log sum_l share_l p(name | l); jsonl and csv add label and likeliest_label.

    \b
    Examples:
      dinogen score tyrannosaurus velociraptor
      dinogen score checkpoints/lstm --file candidates.txt --sort --format csv
      dinogen score checkpoints/names anna --label female --format jsonl
    """
    from dinogen.data import read_names
    from dinogen.formats import FIELDS, SCORE_LABEL_FIELDS, score_line, write_names
    from dinogen.output import standard_output

    checkpoint = None
    if args and (args[0].endswith(".pt") or os.path.isdir(args[0])):
        checkpoint, args = args[0], args[1:]
    generator = generator_for(checkpoint, device)
    names = list(args)
    if names_file:
        names += read_names(names_file, lowercase=generator.lowercase)
    if not names:
        raise click.UsageError("give names to score as arguments or with --file")
    scores = generator.score(names, sort=sort, label=label_mix(label, generator.labels))
    columns = FIELDS if generator.labels is None else SCORE_LABEL_FIELDS
    with standard_output() as stdout:
        write_names(scores, stdout, fmt, text=score_line, columns=columns)
