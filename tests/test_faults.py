"""Faults: signals during training and processes killed while writing checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import wait_for

from dinogen.checkpoint import load_checkpoint
from dinogen.output import remove_unfinished_writes
from dinogen.run import RUN_FILES


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_last_pt_and_says_how_to_resume(names_file, tmp_path, sig, code):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "dinogen", "train", "-c", "tiny", "--data", str(names_file), "-o", str(run_dir),
        "--set", "train.max_steps=1000000", "--set", "train.eval_every=20",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (run_dir / "last.pt").exists())
    time.sleep(0.3)  # let it get between evaluations
    child.send_signal(sig)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == code, stderr
    assert f"Resume with: dinogen train --resume {run_dir}" in stderr and "Traceback" not in stderr
    assert stdout == ""
    checkpoint = load_checkpoint(run_dir / "last.pt")
    assert checkpoint.step > 20 and checkpoint.trainer_state["step"] == checkpoint.step


WRITER = """
import sys
from dinogen.checkpoint import load_checkpoint, save_checkpoint
checkpoint = load_checkpoint(sys.argv[1])
checkpoint.train_names = checkpoint.train_names * 2000  # a bigger file takes longer to write
print("ready", flush=True)
while True:
    checkpoint.step += 1
    save_checkpoint(checkpoint, sys.argv[2])
"""


def test_kill_9_while_writing_never_leaves_a_corrupt_checkpoint(trained_run, tmp_path):
    target = tmp_path / "last.pt"
    steps = []
    for delay in [0.05, 0.13, 0.21, 0.29, 0.37, 0.45]:
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(trained_run / "best.pt"), str(target)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if target.exists():
            steps.append(load_checkpoint(target).step)  # whole, or the previous whole file
    assert steps, "some write finished"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert all(p.name.startswith(".last.pt.") and p.suffix == ".tmp" for p in leftovers)
    (tmp_path / ".config.yaml.0123456789abcdef.tmp").write_text("half a config")  # any run file's write
    (tmp_path / ".notes.txt.0123456789abcdef.tmp").write_text("not a run file: kept")
    remove_unfinished_writes(tmp_path, RUN_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.0123456789abcdef.tmp", "last.pt"]


def test_a_closed_pipe_stops_quietly(trained_run):
    """`dinogen sample ... | head -1`: the reader leaves early; no traceback, the SIGPIPE status."""
    command = [sys.executable, "-m", "dinogen", "sample", str(trained_run), "-n", "200000", "--batch-size", "1000"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = child.stdout.readline()
    child.stdout.close()  # like `head -1` exiting
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141
    assert first.strip() and stderr == ""
