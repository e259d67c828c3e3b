"""Rebuild the pretrained model that comes with dinogen: `dinogen train` with the default config and its seed.

It trains on the CPU into a temporary run directory and keeps best.pt without its training state (the
optimizer's moments double its size and only resuming needs them). Run from the repository root:

    python tools/bundle_model.py        # or: make bundled-model
"""

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from dinogen.bundled import BUNDLED_MODEL
from dinogen.checkpoint import load_checkpoint, save_checkpoint
from dinogen.run import Run

with (
    tempfile.TemporaryDirectory() as work,
    Run.start("default", Path(work) / "run", overrides=["train.device=cpu"]) as run,
):
    print(run.describe("training"), file=sys.stderr)
    run.fit()
    best = load_checkpoint(run.run_dir / "best.pt")
    # the bundled list's own name, not where this checkout happens to be
    save_checkpoint(replace(best, trainer_state={}, data_path="data/dinos.txt"), BUNDLED_MODEL)
print(f"wrote {BUNDLED_MODEL}: step {best.step}, validation loss {best.metrics['val_loss']:.4f}", file=sys.stderr)
