"""Train rnn, gru and lstm on the bundled dinosaur names and draw the figures of docs/how-it-works.md.

    python docs/figures/make_figures.py [RUNS_DIR]

Each cell trains with its bundled config (the default config, 100 epochs, clipped at 1.0), evaluating every
10 steps instead of 50 for denser curves (evaluation changes nothing in training); a fourth run is the rnn
without clipping. The runs go to RUNS_DIR (default: a temporary folder) and take about a minute each on a
busy 2-core CPU. It writes three PNGs beside this script and prints the numbers the page quotes.
The last figure also rebuilds each run's initial weights from its seed, as `dinogen train` drew them.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from dinogen import Vocab, load_checkpoint
from dinogen.data import BOUNDARY
from dinogen.model import CharRNN, build_model
from dinogen.plot import draw_grad_norm, draw_loss, pyplot, read_runs

FIGURES = Path(__file__).resolve().parent
RUNS = {"rnn": ["-c", "rnn"], "gru": ["-c", "gru"], "lstm": ["-c", "lstm"],
        "rnn-no-clip": ["-c", "rnn", "--set", "train.grad_clip=null"]}  # fmt: skip
CELLS = ("rnn", "gru", "lstm")
REACH = 16  # characters back over which the gradient's reach is measured


def train(runs_dir: Path) -> None:
    for name, args in RUNS.items():
        command = [sys.executable, "-m", "dinogen", "train", *args, "-o", str(runs_dir / name), "--overwrite", "-q"]
        subprocess.run([*command, "--set", "train.eval_every=10"], check=True)


def gradient_reach(model: CharRNN, vocab: Vocab, names: list[str]) -> torch.Tensor:
    """Mean norm of the gradient of the loss at character REACH w.r.t. the input k steps earlier, k = 0..REACH-1.

    The workshop's vanishing gradient, measured: how much one character's loss can still teach the
    weights about the inputs k steps back, over the names of at least REACH characters.
    """
    model.eval()
    names = [name for name in names if len(name) >= REACH]
    tokens = torch.tensor([[BOUNDARY, *vocab.encode(name[:REACH])] for name in names])  # (B, REACH + 1)
    x = model.embedding(tokens[:, :REACH]).detach().requires_grad_()  # (B, T, E)
    out, _ = model.rnn(x)  # (B, T, H)
    loss = nn.functional.cross_entropy(model.head(out[:, -1]), tokens[:, -1], reduction="sum")
    loss.backward()
    return x.grad.norm(dim=-1).mean(0).flip(0)  # (T,): k = 0 is the last input, k = REACH - 1 the boundary


def draw(runs_dir: Path) -> None:
    plt = pyplot()
    cells = read_runs([runs_dir / name for name in CELLS])
    figure, axes = plt.subplots(figsize=(7, 4), layout="constrained")
    draw_loss(axes, cells, train=False)
    axes.set_ylim(1.5, 2.5)  # the first evaluations (3.3 nats at step 10) would flatten the rest
    axes.set_xlabel("step")
    axes.set_title("Validation loss of the three cells on data/dinos.txt")
    figure.savefig(FIGURES / "cells-loss.png", dpi=100)

    figure, axes = plt.subplots(figsize=(7, 4), layout="constrained")
    draw_grad_norm(axes, cells)
    axes.set_ylim(0.15, 4)  # room above the spikes for the legend
    axes.legend(loc="upper center", ncols=4)
    axes.set_xlabel("step")
    axes.set_title("Global gradient norm before clipping (last step before each evaluation)")
    figure.savefig(FIGURES / "grad-norm.png", dpi=100)

    figure, (before, after) = plt.subplots(1, 2, sharey=True, figsize=(8, 4), layout="constrained")
    for name in CELLS:
        checkpoint = load_checkpoint(runs_dir / name / "best.pt")
        torch.manual_seed(checkpoint.config.train.seed)  # the run's initial weights, as dinogen train drew them
        initial = gradient_reach(build_model(len(checkpoint.vocab), checkpoint.config.model), checkpoint.vocab,
                                 checkpoint.train_names)  # fmt: skip
        trained = gradient_reach(checkpoint.build_model(), checkpoint.vocab, checkpoint.train_names)
        before.plot(range(REACH), initial, marker="o", markersize=3, label=name)
        after.plot(range(REACH), trained, marker="o", markersize=3, label=name)
        print(f"{name}: gradient {REACH - 1} steps back / 1 step back: {initial[-1] / initial[1]:.1e} at "
              f"initialisation, {trained[-1] / trained[1]:.1e} trained")  # fmt: skip
    for axes, title in ((before, "at initialisation"), (after, "trained (best.pt)")):
        axes.set_yscale("log")
        axes.set_xlabel(f"k: steps back from character {REACH}")
        axes.set_title(title)
        axes.grid(alpha=0.3, which="both")
    before.set_ylabel("mean gradient norm at x^(t-k)")
    after.legend()
    figure.suptitle(f"How far back one character's loss reaches (names of {REACH}+ characters)")
    figure.savefig(FIGURES / "gradient-reach.png", dpi=100)

    for run in read_runs([runs_dir / name for name in RUNS]):
        best = min(run.rows, key=lambda row: row["val_loss"])
        norms = [row["grad_norm"] for row in run.rows]
        print(f"{run.label}: best validation loss {best['val_loss']:.3f} at step {best['step']}, "
              f"last {run.rows[-1]['val_loss']:.3f}; gradient norm median {sorted(norms)[len(norms) // 2]:.2f}, "
              f"max {max(norms):.2f}, above 1 at {sum(n > 1 for n in norms)} of {len(norms)} evaluations; "
              f"{run.rows[-1]['elapsed']:.0f} s")  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(folder)
        train(runs_dir)
        draw(runs_dir)


if __name__ == "__main__":
    main()
