"""Reading a user's file: regular files only, size capped, every failure one sentence."""

import os
import stat
import sys
from pathlib import Path

from dinogen.errors import DinogenError, shorten


def read_bytes(path: str | Path, what: str, limit: int) -> bytes:
    """The bytes of the regular file at `path` ("-": standard input), at most `limit`; anything else is a
    DinogenError naming `what`.

    O_NONBLOCK: opening a FIFO would otherwise wait for a writer for ever; the type is checked before reading.
    """
    named = f"{what} {shorten(str(path))}"
    if str(path) == "-":
        try:
            data = sys.stdin.buffer.read(limit + 1) if sys.stdin else b""
        except (OSError, ValueError) as err:  # ValueError: stdin closed
            raise DinogenError(f"cannot read {named} (standard input): {_reason(err)}") from None
        if len(data) > limit:
            raise DinogenError(f"{named} (standard input) is larger than {_size(limit)}, the most dinogen reads")
        return data
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DinogenError(f"{named} does not exist") from None
    except (OSError, ValueError) as err:  # ValueError: a NUL character in the name
        raise DinogenError(f"cannot read {named}: {_reason(err)}") from None
    try:
        data = _read_regular(handle, limit + 1)  # + 1: a file that grew past the limit is caught too
    except OSError as err:
        raise DinogenError(f"cannot read {named}: {_reason(err)}") from None
    except _NotRegular as err:
        raise DinogenError(f"{named} {err}") from None
    finally:
        os.close(handle)
    if data is None or len(data) > limit:
        raise DinogenError(f"{named} is larger than {_size(limit)}, the most dinogen reads for a {what}")
    return data


class _NotRegular(Exception):
    """The open file is a directory, pipe, device or socket."""


def _read_regular(handle: int, most: int) -> bytes | None:
    """Up to `most` bytes of an open regular file; None when it is larger."""
    info = os.fstat(handle)
    if stat.S_ISDIR(info.st_mode):
        raise _NotRegular("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise _NotRegular("is not a regular file (it is a pipe, device or socket); give a file")
    if info.st_size >= most:
        return None
    chunks, size = [], 0
    while size < most:
        chunk = os.read(handle, min(most - size, 2**24))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _size(limit: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if limit >= scale:
            return f"{limit / scale:g} {unit}"
    return f"{limit:,} bytes"
