"""Loss, gradient-norm and learning-rate curves of one or more runs, from their metrics.jsonl (needs matplotlib)."""

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dinogen.config import load_config
from dinogen.errors import ConfigError, DinogenError, shorten
from dinogen.output import output_file


@dataclass
class RunCurves:
    """What the plots show of one run: its label, its evaluations and the gradient norm it was clipped to."""

    label: str
    rows: list[dict]  # metrics.jsonl, one row per evaluation
    grad_clip: float | None  # train.grad_clip of its config.yaml (None: not clipped, or no config.yaml)


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


def read_grad_clip(run_dir: str | Path) -> float | None:
    """The run's train.grad_clip, read from its config.yaml; None when it is null or there is no config.yaml."""
    path = Path(run_dir) / "config.yaml"
    if not os.path.isfile(path):
        return None
    try:
        return load_config(path).train.grad_clip
    except ConfigError as err:
        raise DinogenError(f"cannot read train.grad_clip from {shorten(str(path))}: {err}") from None


def read_runs(run_dirs: list[str | Path]) -> list[RunCurves]:
    return [
        RunCurves(_label(run_dir, run_dirs), read_metrics(run_dir), read_grad_clip(run_dir)) for run_dir in run_dirs
    ]


def plot_runs(run_dirs: list[str | Path], output: str | Path) -> None:
    """Write `draw_runs`'s figure to `output` (.png, .svg, .pdf)."""
    plt = pyplot()
    figure = draw_runs(read_runs(run_dirs))
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


def pyplot():
    """matplotlib.pyplot, drawing to files only, or a sentence saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise DinogenError("plotting needs matplotlib: pip install 'dinogen[plot]'") from None
    return plt


def draw_runs(runs: list[RunCurves]):
    """A Figure of train (dashed) and validation (solid) loss, the gradient norm and the learning rate against step."""
    figure, (loss_axes, grad_axes, lr_axes) = pyplot().subplots(
        3, 1, sharex=True, figsize=(8, 8.5), gridspec_kw={"height_ratios": [3, 1.6, 1]}, layout="constrained"
    )
    draw_loss(loss_axes, runs)
    loss_axes.set_title("dinogen: " + ", ".join(run.label for run in runs))
    draw_grad_norm(grad_axes, runs)
    for color, run in zip(_colors(), runs, strict=False):
        lr_axes.plot([row["step"] for row in run.rows], [row["lr"] for row in run.rows], color=color, label=run.label)
    lr_axes.set_xlabel("step")
    lr_axes.set_ylabel("learning rate")
    lr_axes.grid(alpha=0.3)
    return figure


def draw_loss(axes, runs: list[RunCurves], train: bool = True) -> None:
    """Each run's validation loss (solid, with dots) and, with `train`, its train loss (dashed)."""
    for color, run in zip(_colors(), runs, strict=False):
        if train:
            steps = [row["step"] for row in run.rows]
            axes.plot(steps, [row["train_loss"] for row in run.rows], "--", color=color, label=f"{run.label} train")
        validated = [row for row in run.rows if row["val_loss"] is not None]
        if validated:
            axes.plot(
                [row["step"] for row in validated],
                [row["val_loss"] for row in validated],
                "-",
                color=color,
                marker="o",
                markersize=3,
                label=f"{run.label} validation" if train else run.label,
            )
    axes.set_ylabel("loss (nats per character)")
    axes.grid(alpha=0.3)
    axes.legend()


def draw_grad_norm(axes, runs: list[RunCurves]) -> None:
    """Each run's gradient norm before clipping on a log scale, and a dashed line at each clip threshold."""
    for color, run in zip(_colors(), runs, strict=False):
        axes.plot(
            [row["step"] for row in run.rows], [row["grad_norm"] for row in run.rows], color=color, label=run.label
        )
    clipped = [(color, run) for color, run in zip(_colors(), runs, strict=False) if run.grad_clip is not None]
    if len({run.grad_clip for _, run in clipped}) == 1:  # one threshold for all: one grey line
        axes.axhline(clipped[0][1].grad_clip, linestyle="--", color="0.35", linewidth=1, label="clip threshold")
    else:  # each run's own, in its color
        for color, run in clipped:
            axes.axhline(run.grad_clip, linestyle="--", color=color, linewidth=1, label=f"{run.label} clip threshold")
    axes.set_yscale("log")  # norms that vanish or explode differ by powers of ten
    axes.set_ylabel("gradient norm")
    axes.grid(alpha=0.3, which="both")
    axes.legend()


def _colors() -> list[str]:
    """One color a run, the same one in every panel."""
    return pyplot().rcParams["axes.prop_cycle"].by_key()["color"] * 10


def _label(run_dir: str | Path, run_dirs: list[str | Path]) -> str:
    """A run's directory name, or its whole path when two runs share a name."""
    names = [Path(d).resolve().name for d in run_dirs]
    name = Path(run_dir).resolve().name
    return name if names.count(name) == 1 else str(run_dir)
