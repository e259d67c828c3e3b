"""Run directories: resume, interruption, and the rules for changing a config on resume."""

from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from dinogen.checkpoint import load_checkpoint
from dinogen.errors import ConfigError, DinogenError
from dinogen.run import Run


def _weights(path):
    return load_checkpoint(path).model_state


@pytest.mark.parametrize(("cell", "ensemble"), [("gru", 1), ("lstm", 1), ("lstm", 2)])
def test_a_resumed_run_ends_bit_for_bit_where_one_run_does(names_file, tmp_path, cell, ensemble):
    config = tiny_config(names_file, max_steps=40, eval_every=10, lr_schedule="cosine", warmup_steps=5)
    config.model.cell, config.model.dropout = cell, 0.3  # dropout makes the random state matter
    config.model.ensemble = ensemble

    whole = Run(config, tmp_path / "whole")
    whole.prepare_dir()
    whole.fit()

    steps = []
    part = Run(config, tmp_path / "part")
    part.prepare_dir()
    assert part.fit(on_step=steps.append, should_stop=lambda: len(steps) == 13) == "interrupted"
    assert load_checkpoint(tmp_path / "part" / "last.pt").step == 13
    resumed = Run.resume(tmp_path / "part")
    assert resumed.trainer.step == 13
    resumed.fit()

    for key, tensor in _weights(tmp_path / "whole" / "last.pt").items():
        assert torch.equal(tensor, _weights(tmp_path / "part" / "last.pt")[key]), key
    whole_log = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    part_log = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(whole_log) == len(part_log) == 4


def test_resume_allows_budget_changes_and_refuses_shape_changes(trained_run):
    resumed = Run.resume(trained_run, ["train.max_steps=500"])
    assert resumed.config.train.max_steps == 500 and resumed.trainer.step == 200
    with pytest.raises(ConfigError, match="model.hidden_size cannot change when resuming"):
        Run.resume(trained_run, ["model.hidden_size=32"])


def test_resume_from_a_file_writes_beside_it(trained_run):
    resumed = Run.resume(trained_run / "last.pt")
    assert resumed.run_dir == trained_run
    assert resumed.train_names == load_checkpoint(trained_run / "last.pt").train_names


def test_resuming_an_older_checkpoint_of_a_run_is_refused(trained_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    older = load_checkpoint(run_dir / "best.pt")
    older.step = 10
    from dinogen.checkpoint import save_checkpoint

    save_checkpoint(older, run_dir / "best.pt")
    with pytest.raises(DinogenError, match="is at step 10 but .*last.pt is at step 200"):
        Run.resume(run_dir / "best.pt")
    assert Run.resume(run_dir / "last.pt").trainer.step == 200


def test_run_start_gives_python_what_dinogen_train_does(names_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = [f"data.path={names_file}", "train.max_steps=20"]
    with Run.start("tiny", overrides=overrides) as first:
        assert first.run_dir == Path("checkpoints/tiny")  # a new numbered directory, as the CLI picks
        with pytest.raises(DinogenError, match="in use by another training"):
            Run.start("tiny", first.run_dir, overrides=overrides, overwrite=True)  # the directory is locked
        assert first.fit() == "budget spent" and first.signal == 0
    with Run.start("tiny", overrides=overrides) as second:
        assert second.run_dir == Path("checkpoints/tiny-2")  # never over an earlier run
    resumed = Run.start(resume=first.run_dir, overrides=["train.max_steps=30"])
    with resumed:
        assert resumed.trainer.step == 20 and not resumed.finished
        assert resumed.describe("resuming").startswith("resuming gru (")
    with pytest.raises(ConfigError, match="resume continues a run with its saved config and directory; drop config"):
        Run.start("tiny", resume=first.run_dir)


def test_a_dry_run_start_writes_nothing(names_file, tmp_path):
    run = Run.start("tiny", tmp_path / "dry", overrides=[f"data.path={names_file}"], dry_run=True)
    run.close()
    assert not (tmp_path / "dry").exists()


def test_a_signal_stops_run_fit_after_the_step_and_saves_last_pt(names_file, tmp_path):
    import os
    import signal

    with Run.start("tiny", tmp_path / "run", overrides=[f"data.path={names_file}", "train.max_steps=100000"]) as run:
        steps = []

        def on_step(step):
            steps.append(step)
            if step == 7:
                os.kill(os.getpid(), signal.SIGTERM)  # as `kill` would, in the middle of training

        assert run.fit(on_step=on_step) == "interrupted" and run.signal == signal.SIGTERM
    assert steps[-1] == 7 and load_checkpoint(tmp_path / "run" / "last.pt").step == 7
