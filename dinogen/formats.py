"""How results look: names as text, JSON lines or CSV, and strict JSON for reports."""

import csv
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import IO

from dinogen.scored import LABEL_FIELDS, ScoredName

NAME_FORMATS = ("text", "jsonl", "csv")  # `sample` and `score`
REPORT_FORMATS = ("text", "json")  # `evaluate` and `info`
FIELDS = tuple(field.name for field in fields(ScoredName) if field.name not in LABEL_FIELDS)  # jsonl's and csv's
SAMPLE_LABEL_FIELDS = (*FIELDS, "label")  # a model of labelled names: the label each name was drawn for
SCORE_LABEL_FIELDS = (*FIELDS, *LABEL_FIELDS)  # and the label it was scored for (null: a mix), and its likeliest


def plural(number: int, singular: str, plural_form: str = "") -> str:
    """'1 name', '2 names', '1,453 names'."""
    return f"{number:,} {singular if number == 1 else plural_form or singular + 's'}"


def name_line(record: ScoredName) -> str:
    """The text format of `sample`: the name alone."""
    return record.name


def score_line(record: ScoredName) -> str:
    """The text format of `score`: loss per character, log-probability and name, tab-separated."""
    return f"{record.nll_per_char:.4f}\t{record.log_prob:.4f}\t{record.name}"


def write_names(
    records: Iterable[ScoredName],
    file: IO[str],
    fmt: str = "text",
    text: Callable[[ScoredName], str] = name_line,
    columns: tuple[str, ...] = FIELDS,
) -> int:
    """Write each record as it arrives (so output streams), jsonl and csv with `columns`; return how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(file, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
    for record in records:
        row = {column: getattr(record, column) for column in columns} if fmt != "text" else None
        if fmt == "text":
            file.write(text(record) + "\n")
        elif fmt == "jsonl":
            file.write(to_json(row) + "\n")
        else:
            writer.writerow(row)
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
