"""What the commands share: the global options, logging, option types, and finding the checkpoint to use."""

import math
import re
import sys
from pathlib import Path

import click

from dinogen.errors import DinogenError, shorten

VERBOSE, DEBUG = "dinogen.verbose", "dinogen.debug"  # keys of click's ctx.meta, shared by all nested contexts


def _set_verbose(ctx: click.Context, param, value: bool) -> None:
    if value:
        ctx.meta[VERBOSE] = True
        configure_logging(True)


def _set_debug(ctx: click.Context, param, value: bool) -> None:
    if value:
        ctx.meta[DEBUG] = True


def global_options(function):
    """-v and --debug, accepted before the command (`dinogen -v train`) and after it (`dinogen train -v`)."""
    function = click.option("--debug", is_flag=True, expose_value=False, callback=_set_debug,
                            help="Show a full traceback on errors.")(function)  # fmt: skip
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
                        help="Debug logging on stderr.")(function)  # fmt: skip


def configure_logging(verbose: bool) -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("dinogen")
    logger.handlers = [handler]  # replaces the handler of an earlier call in the same process
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False


class Shard(click.ParamType):
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


class PathText(click.Path):
    """A click.Path that refuses an empty text, which would otherwise mean the current folder or nothing at all."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail(f"{value!r} is not a path; give the path of a file or folder", param, ctx)
        return super().convert(value, param, ctx)


class Number(click.FloatRange):
    """A FloatRange that also refuses nan, which no comparison with a bound would catch."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{shorten(repr(value))} is not a number", param, ctx)
        return number


class LabelWeight(click.ParamType):
    """LABEL, or LABEL:W for a weight W; which one depends on the model's labels (see `label_mix`), so both are kept."""

    name = "LABEL[:W]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value)
        label, colon, weight = text.rpartition(":")
        try:
            number = float(weight) if colon and label.strip() else None
        except ValueError:
            number = None  # the text after the last colon is no number: the whole text is the label
        return text, label, number


LABEL_HELP = (
    "Names for this label (repeatable: a mix of equal shares); LABEL:W gives it weight W, shares being in proportion "
    "to the weights [default: the model's labels in the proportions of its training names]."
)


def label_mix(values: tuple, labels: list[str] | None) -> dict[str, float] | None:
    """The library's `label` for the --label values: a mapping of labels to weights, or None for none given.

    LABEL:W is the label LABEL with weight W when W reads as a number and LABEL:W is not itself one of the model's
    labels; a weight that is not a positive number is a usage error.
    """
    from dinogen.data import normalize_label

    if not values:
        return None
    known = {label.casefold() for label in labels or ()}
    mix: dict[str, float] = {}
    for text, label, weight in values:
        if weight is None or normalize_label(text).casefold() in known:
            label, weight = text, 1.0
        elif not (math.isfinite(weight) and weight > 0):
            raise click.BadParameter(
                f"{shorten(repr(text))} gives the weight {weight:g}; a weight must be a positive number",
                param_hint="'--label'",
            )
        mix[label] = mix.get(label, 0.0) + weight
    return mix


DEVICE_OPTION = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")


def loaded_checkpoint(path: str | None, device: str):
    """The checkpoint at `path` (default: the latest run) loaded onto `device`, and the device."""
    from dinogen.checkpoint import load_checkpoint
    from dinogen.device import resolve_device

    target = resolve_device(device)
    return load_checkpoint(checkpoint_path(path), map_location=target), target


def checkpoint_path(path: str | None, bundled: bool = True) -> str | Path:
    """`path` as given, or the run `dinogen train` wrote last, or before any run the bundled model (a note says so)."""
    from dinogen.bundled import bundled_model
    from dinogen.rundir import RUNS_ROOT, run_dirs

    if path is not None:
        return path
    runs = run_dirs(RUNS_ROOT)
    if not runs and bundled and bundled_model() is not None:
        click.echo(
            f"no run in {RUNS_ROOT}/ yet: using the bundled dinosaur model (`dinogen train` makes your own)", err=True
        )
        return bundled_model()
    if not runs:
        raise DinogenError(f"no checkpoint given and no run in {RUNS_ROOT}/ yet; run `dinogen train` first")
    if len(runs) > 1:
        click.echo(
            f"using {runs[-1]}, the latest of {len(runs)} runs in {RUNS_ROOT}/ (name one to choose another)", err=True
        )
    return runs[-1]


def generator_for(checkpoint: str | None, device: str):
    """A Generator for the checkpoint at `checkpoint` (default: the latest run) on `device`."""
    from dinogen.sample import Generator

    return Generator.from_loaded(*loaded_checkpoint(checkpoint, device))


def log(quiet: bool, message: str) -> None:
    """A line on stderr, unless `quiet`."""
    if not quiet:
        click.echo(message, err=True)
