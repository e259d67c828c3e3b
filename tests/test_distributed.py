"""More than one process: the single-process world, batch shards, and 2 gloo processes training as one."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from dinogen.checkpoint import load_checkpoint
from dinogen.cli import main
from dinogen.config import ModelConfig
from dinogen.distributed import SINGLE_PROCESS, World, joined_world
from dinogen.model import CharRNN
from dinogen.run import lock_run_dir

# The bundled tiny config on the test names: 27 training names in batches of 13, 13 and 1, so that
# rank 1 also meets a batch without a row of its own.
TINY = ["-c", "tiny", "--set", "train.batch_size=13"]


def test_a_single_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with joined_world() as world:
        assert world is SINGLE_PROCESS and world.is_main and not torch.distributed.is_initialized()
    rows = torch.tensor([4, 1, 3])
    model = CharRNN(5, ModelConfig(hidden_size=4, embedding_dim=2))
    mine, weight = world.shard(rows)
    assert mine is rows and weight == 1.0
    assert world.wrap(model) is model and world.device(torch.device("cpu")) == torch.device("cpu")
    assert world.agree(1.5, True) == (1.5, True) and world.sum(2.5) == 2.5 and world.from_main(3.5) == 3.5
    assert world.gather("mine") == ["mine"] and world.main_choice("mine") == "mine" and world.together(lambda: 7) == 7
    state = torch.get_rng_state()
    world.draw_own_randomness(seed=0, step=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_ranks_share_every_row_once():
    rows = torch.arange(7)
    shards = [World(rank, 3).shard(rows) for rank in range(3)]
    assert sorted(torch.cat([mine for mine, _ in shards]).tolist()) == list(range(7))
    assert all(weight == 1.0 for _, weight in shards)
    # Too few rows for the ranks: the last one runs a stand-in row that counts for nothing.
    assert [(mine.tolist(), weight) for mine, weight in (World(rank, 3).shard(rows[:2]) for rank in range(3))] == [
        ([0], 1.0),
        ([1], 1.0),
        ([0], 0.0),
    ]


def _losses(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [loss for record in map(json.loads, lines) for loss in (record["train_loss"], record["val_loss"])]


def test_two_ranks_train_as_one_process(names_file, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    result = CliRunner().invoke(main, ["train", *TINY, "--data", str(names_file), "-o", str(one), "-q"])
    assert result.exit_code == 0, result.output
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command = [*torchrun, "-m", "dinogen", "train", *TINY, "--data", str(names_file), "-o", str(two)]
    child = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout == "" and child.stderr.count("device cpu x 2 processes") == 1  # rank 0 alone speaks
    assert {p.name for p in two.iterdir()} == {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", ".lock"}
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-5)
    checkpoint = load_checkpoint(two / "last.pt")
    assert checkpoint.model_state.keys() == load_checkpoint(one / "last.pt").model_state.keys()  # no "module."


def _start_ranks(names_file, run_dir, *args: str) -> list[subprocess.Popen]:
    """Two ranks started as torchrun starts them, so that each one's exit status can be read."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    world = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "dinogen", "train", *args, "--set", "train.eval_every=20"]
    return [
        subprocess.Popen(
            command, env=os.environ | world | {"RANK": str(rank), "LOCAL_RANK": str(rank)}, stderr=subprocess.PIPE
        )
        for rank in range(2)
    ]


def _finish(ranks: list[subprocess.Popen]) -> list[int]:
    """The ranks' exit statuses, once they have ended without a traceback."""
    for rank in ranks:
        _, stderr = rank.communicate(timeout=60)
        assert b"Traceback" not in stderr, stderr.decode()
    return [rank.returncode for rank in ranks]


def test_a_signal_to_one_rank_stops_all_and_resume_continues(names_file, tmp_path):
    run_dir = tmp_path / "run"
    ranks = _start_ranks(names_file, run_dir, *TINY, "--data", str(names_file), "-o", str(run_dir),
                         "--set", "train.max_steps=1000000")  # fmt: skip
    deadline = time.monotonic() + 60
    while not (run_dir / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ranks[1].send_signal(signal.SIGTERM)  # rank 0 is not told: it must learn it from rank 1
    assert _finish(ranks) == [143, 143]
    stopped = load_checkpoint(run_dir / "last.pt").step
    assert stopped >= 20
    ranks = _start_ranks(names_file, run_dir, "--resume", str(run_dir), "--set", f"train.max_steps={stopped + 20}")
    assert _finish(ranks) == [0, 0]
    assert load_checkpoint(run_dir / "last.pt").step == stopped + 20


def test_a_refusal_on_rank_0_stops_every_rank(trained_run, names_file):
    """A run directory that holds a run: rank 0 refuses it, and the other rank must not wait for it for ever."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command = [*torchrun, "-m", "dinogen", "train", *TINY, "--data", str(names_file), "-o", str(trained_run)]
    child = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert child.returncode != 0 and child.stderr.count("already holds a run") == 2  # one sentence per rank


def test_a_resume_refused_on_rank_0_stops_every_rank(trained_run, names_file, tmp_path):
    """Rank 0 alone locks the run directory; when another training holds it, every rank must stop, not wait."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    holder = lock_run_dir(run_dir)  # another training is using the directory
    try:
        ranks = _start_ranks(names_file, run_dir, "--resume", str(run_dir), "--set", "train.max_steps=400")
        statuses = []
        for rank in ranks:
            _, stderr = rank.communicate(timeout=60)  # a rank waiting for rank 0 would time out here
            assert b"Traceback" not in stderr and b"in use by another training" in stderr, stderr.decode()
            statuses.append(rank.returncode)
        assert statuses == [1, 1]
    finally:
        holder.close()
    assert load_checkpoint(run_dir / "last.pt").step == 200  # nothing saved was touched
