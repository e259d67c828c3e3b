"""Writing results for scripts: text, JSON lines or CSV, to stdout or atomically to a file."""

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from dinogen.errors import DinogenError
from dinogen.sample import ScoredName

FORMATS = ("text", "jsonl", "csv")
FIELDS = ("name", "log_prob", "nll_per_char", "length")


def write_names(records: Iterable[ScoredName], file: IO[str], fmt: str = "text") -> int:
    """Write each record as it arrives (so output streams); return how many were written."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(file, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
    for record in records:
        if fmt == "text":
            file.write(record.name + "\n")
        elif fmt == "jsonl":
            file.write(to_json(record.to_dict()) + "\n")
        else:
            writer.writerow(record.to_dict())
        count += 1
    return count


def to_json(value) -> str:
    """Strict JSON: an infinite or NaN number (an impossible name's log_prob) becomes null."""
    return json.dumps(_finite_or_none(value), allow_nan=False)


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


@contextmanager
def atomic_text_file(path: str | Path) -> Iterator[IO[str]]:
    """A text file that appears at `path` only when the block finishes; until then the old file stays."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise DinogenError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            yield file
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
