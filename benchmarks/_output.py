"""What the benchmarks print and write: progress lines on stderr, plain-text tables, formatted figures, JSON."""

import json
import sys
from collections.abc import Sequence
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_json(path: str | Path, document: dict) -> None:
    Path(path).write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = ()
) -> None:
    """A plain-text table: text columns left-aligned, numbers right-aligned (rows hold formatted cells)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    left = [bool(rows) and isinstance(rows[0][i], str) and not _numeric(rows[0][i]) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(values, widths, left, strict=True))

    print(f"\n{title}")
    print("=" * len(title))
    print(line(headers).rstrip())
    print(line(["-" * w for w in widths]).rstrip())
    for row in cells:
        print(line(row).rstrip())
    for note in notes:
        print(f"  {note}")


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    try:
        float(stripped)
    except ValueError:
        return stripped in ("-", "n/a")
    return True


def fmt_int(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}"  # value != value: NaN


def fmt_float(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:,.{digits}f}"


def fmt_pct(value: float) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}%"


def fmt_figure(value: float) -> str:
    """A figure of any size: whole numbers from 1,000 up, three significant digits below."""
    return fmt_int(value) if abs(value) >= 1000 else f"{value:.3g}"
