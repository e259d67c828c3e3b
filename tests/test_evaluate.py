import json
import math

import pytest
from helpers import invoke

from dinogen.checkpoint import load_checkpoint
from dinogen.data import EncodedNames
from dinogen.errors import DinogenError
from dinogen.evaluate import evaluate
from dinogen.sample import Generator
from dinogen.train import mean_loss


def test_evaluate_figures(trained_run):
    checkpoint = load_checkpoint(trained_run)
    generator = Generator.from_loaded(checkpoint, "cpu")
    report = evaluate(generator, checkpoint.val_names, samples=200, seed=0)
    assert report.loss == pytest.approx(checkpoint.metrics["val_loss"])  # best.pt was saved at that evaluation
    assert report.bits_per_char == pytest.approx(report.loss / math.log(2))
    assert report.perplexity == pytest.approx(math.exp(report.loss))
    assert report.names == len(checkpoint.val_names)
    assert report.chars == sum(len(n) + 1 for n in checkpoint.val_names)
    assert report.samples == 200 and 0 <= report.novelty <= 1 and 0 < report.uniqueness <= 1
    drawn = generator.sample(200, seed=0)
    assert report.novelty == sum(n not in checkpoint.train_names for n in drawn) / 200
    assert report.uniqueness == len(set(drawn)) / 200


def test_evaluate_loss_on_a_file_is_the_mean_per_character_loss(trained_run, tmp_path):
    names = ["tyrannosaurus", "velociraptor", "oviraptor"]
    path = tmp_path / "test.txt"
    path.write_text("\n".join(names))
    # on the device of the reference below: a GPU sums in another order, a few units of 1e-6 away
    result = invoke("evaluate", trained_run, "--data", path, "--format", "json", "--samples", 50, "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {
        "loss", "bits_per_char", "perplexity", "names", "chars", "samples",
        "novelty", "uniqueness", "sample_mean_length", "train_mean_length",
    }  # fmt: skip
    generator = Generator.from_checkpoint(trained_run, device="cpu")
    direct = mean_loss(generator.model, EncodedNames(names, generator.vocab))
    scores = generator.score(names)
    assert report["loss"] == pytest.approx(direct)
    assert report["loss"] == pytest.approx(-sum(s.log_prob for s in scores) / sum(s.length + 1 for s in scores))


def test_evaluate_rejects_unseen_characters(trained_run):
    generator = Generator.from_checkpoint(trained_run, device="cpu")
    with pytest.raises(DinogenError, match="characters the model never saw"):
        evaluate(generator, ["t-rex"])


def test_info_text_and_json(trained_run):
    result = invoke("info", trained_run, "--format", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["cell"] == "gru" and info["hidden_size"] == 16 and info["step"] == load_checkpoint(trained_run).step
    assert info["parameters"] > 0 and info["device"] == "cpu" and info["torch_version"]
    text = invoke("info", trained_run).stdout
    assert "parameters" in text and "best_val_loss" in text


def test_score_command(trained_run, tmp_path):
    candidates = tmp_path / "candidates.txt"
    candidates.write_text("Diplodocus\nzzzzzz\n")
    result = invoke("score", trained_run, "allosaurus", "t-rex", "--file", candidates, "--sort", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in rows][-1] == "t-rex" and rows[-1]["log_prob"] is None  # strict JSON
    assert "diplodocus" in [r["name"] for r in rows]  # folded to lowercase like the training names
    losses = [r["nll_per_char"] for r in rows[:-1]]
    assert losses == sorted(losses)
    assert invoke("score", trained_run).exit_code == 2
