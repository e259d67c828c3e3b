"""The one path every file is written by, and standard output for a command's results."""

import contextlib
import errno
import glob
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from dinogen.errors import DinogenError, shorten


@contextmanager
def output_file(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """The one way dinogen writes a file: open `path` for writing, and make the block's output appear there.

    A regular file (or a new one) is replaced atomically when the block finishes, keeping the old file's
    mode (a new file gets the mode the umask gives); a symbolic link is followed and its target replaced.
    Anything else (/dev/stdout, a FIFO, a device) is written directly, never replaced by a regular file.
    Any error while writing raises a DinogenError naming `path`; an unfinished write leaves nothing behind.
    """
    try:
        kind = os.stat(path).st_mode  # follows links: /dev/stdout is whatever stdout is
    except FileNotFoundError:
        kind = None
    except OSError as err:
        raise DinogenError(f"cannot write {shorten(str(path))}: {err.strerror}") from None
    if kind is None or stat.S_ISREG(kind):
        writer = _replace_atomically(Path(os.path.realpath(path)), kind)
    else:
        writer = _write_directly(path)
    try:
        with writer as descriptor, _open(descriptor, binary) as file:
            yield file
            file.flush()
    except OSError as err:
        raise DinogenError(f"cannot write {shorten(str(path))}: {err.strerror or err}") from None


def _open(descriptor: int, binary: bool) -> IO:
    if binary:
        return open(descriptor, "wb", closefd=False)
    return open(descriptor, "w", encoding="utf-8", newline="", closefd=False)


def remove_unfinished_writes(directory: Path, names: Iterable[str]) -> None:
    """Delete the temporary files of `names` that writes of a killed process left in `directory`."""
    for name in names:
        for stale in directory.glob(f".{glob.escape(name)}.*.tmp"):
            stale.unlink(missing_ok=True)


@contextmanager
def _replace_atomically(target: Path, old_mode: int | None) -> Iterator[int]:
    """A temporary file beside `target`, renamed over it once written and synced; removed if the block fails."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    # 0o666 through os.open: the umask decides a new file's mode, as it does for any program's new file
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        yield descriptor
        if old_mode is not None:
            os.fchmod(descriptor, stat.S_IMODE(old_mode))
        os.fsync(descriptor)
        os.close(descriptor)
        descriptor = None
        os.replace(temporary, target)
    finally:
        if descriptor is not None:
            os.close(descriptor)
        temporary.unlink(missing_ok=True)


@contextmanager
def _write_directly(path: str | Path) -> Iterator[int]:
    """A FIFO or device opened as it is; a FIFO nobody reads is an error, not a hang."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        if err.errno == errno.ENXIO:  # opening a FIFO without O_NONBLOCK would wait for a reader for ever
            raise DinogenError(f"cannot write {shorten(str(path))}: nothing is reading from it") from None
        raise
    try:
        os.set_blocking(descriptor, True)
        yield descriptor
    finally:
        os.close(descriptor)


def append_line(path: str | Path, line: str) -> None:
    """Add one line at the end of a log file (metrics.jsonl); a failed write raises a DinogenError."""
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError as err:
        raise DinogenError(f"cannot write {shorten(str(path))}: {err.strerror or err}") from None


@contextmanager
def standard_output() -> Iterator[IO[str]]:
    """sys.stdout for a command's results; a closed stdout or a failed write (a full disk) raises a DinogenError.

    A reader that went away (BrokenPipeError) is left to the caller, which stops quietly as Unix tools do.
    """
    if sys.stdout is None:  # started with stdout closed (`dinogen score x >&-`)
        raise DinogenError("cannot write the results: standard output is closed")
    try:
        yield sys.stdout
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        silence_stdout()
        raise DinogenError(f"cannot write to standard output: {err.strerror or err}") from None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's last flush of unwritten output cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real file behind a test runner's stdout
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
