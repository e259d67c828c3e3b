"""Loss and learning-rate curves of one or more runs, from their metrics.jsonl (needs matplotlib)."""

import io
import json
import os
from pathlib import Path

from dinogen.errors import DinogenError, shorten
from dinogen.output import output_file


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The evaluations a run recorded, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not os.path.isfile(path):  # os.path: a name too long for the system is just not a file
        raise DinogenError(
            f"{shorten(str(run_dir))} has no metrics.jsonl; give run directories written by `dinogen train`"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise DinogenError(f"{path} is damaged at line {number}") from None
    return rows


def plot_runs(run_dirs: list[str | Path], output: str | Path) -> None:
    """Draw train (dashed) and validation (solid) loss, and the learning rate, against step."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise DinogenError("plotting needs matplotlib: pip install 'dinogen[plot]'") from None
    runs = {_label(run_dir, run_dirs): read_metrics(run_dir) for run_dir in run_dirs}
    figure, (loss_axes, lr_axes) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 6.5), gridspec_kw={"height_ratios": [3, 1]}, layout="constrained"
    )
    for color, (label, rows) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10, runs.items(), strict=False):
        steps = [row["step"] for row in rows]
        loss_axes.plot(steps, [row["train_loss"] for row in rows], "--", color=color, label=f"{label} train")
        validated = [row for row in rows if row["val_loss"] is not None]
        if validated:
            loss_axes.plot(
                [r["step"] for r in validated],
                [r["val_loss"] for r in validated],
                "-",
                color=color,
                marker="o",
                markersize=3,
                label=f"{label} validation",
            )
        lr_axes.plot(steps, [row["lr"] for row in rows], color=color, label=label)
    loss_axes.set_ylabel("loss (nats per character)")
    loss_axes.set_title("dinogen: " + ", ".join(runs))
    loss_axes.grid(alpha=0.3)
    loss_axes.legend()
    lr_axes.set_xlabel("step")
    lr_axes.set_ylabel("learning rate")
    lr_axes.grid(alpha=0.3)
    image = io.BytesIO()  # drawn whole in memory first: a failed write cannot leave half an image
    try:
        figure.savefig(image, format=Path(output).suffix.lstrip(".").lower() or "png", dpi=120)
    except ValueError:  # matplotlib does not know the file ending
        raise DinogenError(
            f"cannot write {shorten(str(output))}: unknown image format; use a .png, .svg or .pdf name"
        ) from None
    finally:
        plt.close(figure)
    with output_file(output, binary=True) as file:
        file.write(image.getvalue())


def _label(run_dir: str | Path, run_dirs: list[str | Path]) -> str:
    """A run's directory name, or its whole path when two runs share a name."""
    names = [Path(d).resolve().name for d in run_dirs]
    name = Path(run_dir).resolve().name
    return name if names.count(name) == 1 else str(run_dir)
