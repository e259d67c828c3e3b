import pickle

import pytest
import torch
from helpers import WritesAFile

from dinogen.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from dinogen.errors import DinogenError
from dinogen.sample import Generator


def test_checkpoint_holds_everything(trained_run):
    checkpoint = load_checkpoint(trained_run / "best.pt")
    assert checkpoint.config.model.hidden_size == 16
    assert checkpoint.train_names and checkpoint.val_names
    assert not set(checkpoint.train_names) & set(checkpoint.val_names)
    assert checkpoint.step > 0 and checkpoint.metrics["val_loss"] is not None
    assert "optimizer" in checkpoint.trainer_state
    assert load_checkpoint(trained_run).step == checkpoint.step  # a run directory means its best.pt


def test_save_load_gives_the_same_names(trained_run, tmp_path):
    checkpoint = load_checkpoint(trained_run / "last.pt")
    save_checkpoint(checkpoint, tmp_path / "copy.pt")
    original = Generator.from_checkpoint(trained_run / "last.pt", device="cpu").sample(20, seed=5)
    copied = Generator.from_checkpoint(tmp_path / "copy.pt", device="cpu").sample(20, seed=5)
    assert original == copied
    assert [p.name for p in tmp_path.iterdir()] == ["copy.pt"], "no temporary file left behind"


def test_a_cuda_checkpoint_loads_on_cpu(trained_run, tmp_path, monkeypatch):
    """Tag every tensor as saved from cuda:0, as a GPU run writes them, then load here without CUDA."""
    checkpoint = load_checkpoint(trained_run / "best.pt")
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(checkpoint, tmp_path / "gpu.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "gpu.pt", weights_only=True)  # what happens without map_location
    loaded = load_checkpoint(tmp_path / "gpu.pt", map_location="cpu")
    assert all(t.device.type == "cpu" for t in loaded.model_state.values())
    names = Generator(loaded.build_model(), loaded.vocab, loaded.train_names).sample(5, seed=0)
    assert names == Generator.from_checkpoint(trained_run / "best.pt", device="cpu").sample(5, seed=0)


def test_bad_checkpoint_files(tmp_path, trained_run):
    with pytest.raises(DinogenError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(DinogenError, match="truncated, damaged or not a dinogen checkpoint"):
        load_checkpoint(empty)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((trained_run / "best.pt").read_bytes()[:500])
    with pytest.raises(DinogenError, match="truncated, damaged or not a dinogen checkpoint"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DinogenError, match="is not a dinogen checkpoint"):
        load_checkpoint(other)


def test_newer_format_is_refused(trained_run, tmp_path):
    raw = torch.load(trained_run / "best.pt", weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(DinogenError, match="upgrade dinogen"):
        load_checkpoint(tmp_path / "future.pt")


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": WritesAFile(str(marker))}, evil, pickle_module=pickle)
    with pytest.raises(DinogenError, match="nothing in it ran"):
        load_checkpoint(evil)
    assert not marker.exists()
