"""The `dinogen` command line: parse options, call the library, print results.

Each command lives in a module of this package (train.py; names.py: sample and score; reports.py: evaluate,
info and plot; export.py), the only package that imports click. Heavy modules (torch and everything using it) are
imported inside the commands, so that `dinogen --help` and `--version` answer at once.
"""

import signal
import sys
import threading
from contextlib import contextmanager

import click

from dinogen import __version__
from dinogen.cli.common import DEBUG, VERBOSE, configure_logging, global_options
from dinogen.cli.export import export
from dinogen.cli.names import sample, score
from dinogen.cli.reports import evaluate, info, plot
from dinogen.cli.train import train
from dinogen.errors import DinogenError, OptionError


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
                if ctx.meta.get(DEBUG):
                    raise
                spell = _spelling(self.commands.get(ctx.invoked_subcommand or ""))
                error = click.ClickException(err.spelled(spell) if isinstance(err, OptionError) else str(err))
                error.exit_code = err.exit_code
                raise error from None
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as err:
                if ctx.meta.get(DEBUG):
                    raise
                raise unexpected_error(err) from None


# How the command line spells the library's keywords where the longest option is not the clearest.
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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dinogen")
@global_options
@click.pass_context
def main(ctx: click.Context) -> None:
    """Learn what names of a kind look like, and write new ones.

    \b
    Examples:
      dinogen train                          # the default GRU on the bundled dinosaur list
      dinogen sample -n 20 --temperature 0.8
      dinogen train -c lstm --set train.epochs=5 --data my_names.txt
    """
    configure_logging(ctx.meta.get(VERBOSE, False))


for command in (train, sample, score, evaluate, info, plot, export):
    main.add_command(command)
