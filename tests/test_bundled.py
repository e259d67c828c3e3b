"""The pretrained model that comes with dinogen: sound, in step with the code, and used before any training."""

from dataclasses import replace

import torch
from helpers import invoke

from dinogen import Generator
from dinogen.bundled import bundled_model
from dinogen.checkpoint import load_checkpoint
from dinogen.config import load_config
from dinogen.train import resolve_batch_size


def test_the_bundled_model_is_a_sealed_checkpoint_of_the_default_config():
    path = bundled_model()
    assert path is not None and path.stat().st_size < 2**20  # under 1 MB
    raw = torch.load(path, weights_only=True)  # tensors and plain values only: nothing in it can run
    assert raw.keys() == {"format_version", "sha256", "payload"}
    checkpoint = load_checkpoint(path)  # the digest and every field are checked
    default = load_config("default")
    # What tools/bundle_model.py sets: the CPU, and so the batch auto resolves to there.
    cpu = replace(default.train, device="cpu")
    default.train = resolve_batch_size(cpu, torch.device("cpu"), len(checkpoint.train_names))
    assert checkpoint.config == default, "the bundled model is out of date: run `make bundled-model`"
    assert not checkpoint.trainer_state and checkpoint.data_path == "data/dinos.txt"
    assert checkpoint.lowercase and len(checkpoint.train_names) + len(checkpoint.val_names) == 1453


def test_commands_use_the_bundled_model_before_any_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("sample", "-n", 20, "--seed", 0)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 20
    assert "using the bundled dinosaur model" in result.stderr
    assert result.stdout.splitlines() == Generator.pretrained(device="cpu").sample(20, seed=0)
    for command in (["score", "tyrannosaurus"], ["evaluate", "--samples", 50], ["info"]):
        shown = invoke(*command)
        assert shown.exit_code == 0 and shown.stdout and "bundled" in shown.stderr, command
    plotted = invoke("plot")  # curves need a run of your own
    assert plotted.exit_code == 1 and "no run in checkpoints/ yet" in plotted.stderr
