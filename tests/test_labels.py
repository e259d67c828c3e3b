"""Labelled names (issue 19): the file format and folders, the split, the label-conditioned model, sampling and scoring
by label, evaluate per label, info, the checkpoint's labels, and unlabelled models left as they were."""

import itertools
import json
import math
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from helpers import NAMES, PLACES, invoke

from dinogen.bundled import bundled_model
from dinogen.checkpoint import load_checkpoint, seal
from dinogen.config import ModelConfig, parameter_shapes
from dinogen.data import BOUNDARY, read_labelled_names, read_names, split_labelled_names
from dinogen.errors import DinogenError, OptionError
from dinogen.evaluate import evaluate
from dinogen.labels import LabelPlan, label_weights, largest_remainder
from dinogen.model import build_model
from dinogen.page_check import check_page, find_browser
from dinogen.sample import Generator

# Dinosaurs and places; the places' label is spelled three ways, which are one label.
LINES = [f"{name}\tdinosaur" for name in NAMES] + [
    f"{place}\t{['Place', 'place', ' PLACE '][i % 3]}" for i, place in enumerate(PLACES)
]
FAST = ["-q", "--set", "train.max_steps=40", "--set", "train.eval_every=20"]


def train(tmp_path, data, *extra) -> str:
    run_dir = tmp_path / "run"
    result = invoke("train", "-c", "tiny", "--data", data, "-o", run_dir, *FAST, *extra)  # later --set win
    assert result.exit_code == 0, result.output
    return str(run_dir)


@pytest.fixture(scope="module")
def labelled_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labelled") / "labelled.txt"
    path.write_text("\n".join(LINES) + "\n\n  \t \n", encoding="utf-8")  # a blank line, and one of a tab only
    return path


@pytest.fixture(scope="module")
def labelled_run(labelled_file, tmp_path_factory):
    # 150 steps: enough that the likeliest names end (the most likely names are found quickly)
    return train(tmp_path_factory.mktemp("labelled-run"), labelled_file, "--set", "train.max_steps=150")


@pytest.fixture(scope="module")
def generator(labelled_run):
    return Generator.from_checkpoint(labelled_run, device="cpu")


def test_a_labelled_file_is_read_with_its_labels(labelled_file):
    names, labels = read_labelled_names(labelled_file, lowercase=False)
    assert len(names) == len(NAMES) + len(PLACES) == len(labels)
    assert set(labels) == {"dinosaur", "Place"}  # case variants are one label, spelled as first seen
    assert names[len(NAMES) + 10] == "Lake Tahoe" and labels[len(NAMES) + 10] == "Place"  # normalised, " PLACE "
    assert read_names(labelled_file) == list(dict.fromkeys(name.lower() for name in names))  # names only


def test_messy_labels(tmp_path):
    path = tmp_path / "messy.txt"
    path.write_text(
        "rex\t  Old   Norse \nrex\told norse\nrex\tOld Norse\nrex\tLatin\n\t\nRex\tlatin\n", encoding="utf-8"
    )
    names, labels = read_labelled_names(path, lowercase=False)
    # a label with spaces, normalised; a repeated (name, label) dropped; one name under two labels kept under both
    assert list(zip(names, labels, strict=True)) == [("rex", "Old Norse"), ("rex", "Latin"), ("Rex", "Latin")]
    assert read_labelled_names(path, lowercase=True) == (["rex", "rex"], ["Old Norse", "Latin"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rex\tfemale\nraptor\n",
            "line 2 has no tab, but other lines do: each line of a labelled file is a name, a tab",
        ),
        (
            "rex\tfemale\nraptor\t  \n",
            "line 2 has a blank label after its tab; give the name's label or remove the tab",
        ),
        ("rex\tfemale\n \tmale\n", "line 2 has a label but no name before its tab"),
        ("rex\t" + "x" * 101 + "\n", "line 1 has a label of 101 characters, more than the 100 dinogen handles"),
    ],
)
def test_a_labelled_file_refuses_bad_lines(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DinogenError, match=message):
        read_labelled_names(path)
    result = invoke("train", "--data", path, "--dry-run")
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: names file {path} {message}")


def test_a_folder_is_one_file_per_label(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Male.txt").write_text("hans\nolaf\n")
    (folder / "female.txt").write_text("anna\n\nberit\nanna\n")
    (folder / ".hidden.txt").write_text("ignored\n")
    (folder / "Scottish Gaelic").write_text("morag\n")
    (folder / "sub").mkdir()
    names, labels = read_labelled_names(folder)
    assert names == ["hans", "olaf", "morag", "anna", "berit"]  # files in sorted order: Male, Scottish Gaelic, female
    assert labels == ["Male", "Male", "Scottish Gaelic", "female", "female"]
    (folder / "female.txt").write_text("anna\tx\n")
    with pytest.raises(DinogenError, match="female.txt line 1 holds a tab; in a folder each file is one label's names"):
        read_labelled_names(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DinogenError, match="holds no names files; a folder of names holds one file per label"):
        read_labelled_names(empty)
    (empty / "a.txt").write_text("\n\n")
    with pytest.raises(DinogenError, match="folder .* holds no names"):
        read_labelled_names(empty)


def test_a_folder_trains_like_a_labelled_file(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "dinosaur.txt").write_text("\n".join(NAMES))
    (folder / "place.txt").write_text("\n".join(PLACES))
    generator = Generator.from_checkpoint(train(tmp_path, folder), device="cpu")
    assert generator.labels == ["dinosaur", "place"]


def test_the_split_holds_out_each_labels_share():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + ["d"]
    train, val = split_labelled_names(labels, 0.1, seed=3)
    held = Counter(labels[row] for row in val)
    assert held == {"a": 5, "b": 1, "c": 1}  # at least one of a label of 2 or more; a label of one keeps it
    assert sorted(train + val) == list(range(len(labels))) and not set(train) & set(val)
    assert (train, val) == split_labelled_names(labels, 0.1, seed=3) != split_labelled_names(labels, 0.1, seed=4)


def test_the_checkpoint_holds_the_labels(labelled_run):
    checkpoint = load_checkpoint(labelled_run)
    assert checkpoint.labels == ["dinosaur", "Place"]
    assert sum(checkpoint.label_counts) == len(checkpoint.train_names) and all(checkpoint.label_counts)
    assert len(checkpoint.val_label_ids) == len(checkpoint.val_names) and set(checkpoint.val_label_ids) == {0, 1}
    assert "label_embedding.weight" in checkpoint.model_state


def test_info_lists_the_labels(labelled_run):
    counts = load_checkpoint(labelled_run).label_counts
    shown = invoke("info", labelled_run).stdout
    assert f"labels           dinosaur ({counts[0]}), Place ({counts[1]})\n" in shown
    assert json.loads(invoke("info", labelled_run, "--format", "json").stdout)["labels"] == {
        "dinosaur": counts[0],
        "Place": counts[1],
    }


def test_an_unknown_label_is_one_sentence(labelled_run, generator):
    result = invoke("sample", labelled_run, "--label", "plase")
    assert result.exit_code == 2
    assert result.stderr == "Error: unknown --label 'plase'; the model knows: dinosaur, Place; did you mean 'Place'?\n"
    with pytest.raises(OptionError, match="^unknown label 'dino'; the model knows: dinosaur, Place; did you mean"):
        generator.sample(3, label="dino")
    with pytest.raises(OptionError, match="unknown label 'x'; the model knows: dinosaur, Place$"):
        generator.score(["rex"], label={"x": 1})
    with pytest.raises(OptionError, match="weights must be positive numbers, got -1 for 'Place'"):
        generator.sample(3, label={"Place": -1})
    many = [f"label{i}" for i in range(30)]
    with pytest.raises(OptionError, match=r"label9, … \(30 labels\)$"):
        label_weights("zzz", many, [1] * 30)


def test_a_label_on_an_unlabelled_model_is_one_sentence(trained_run):
    result = invoke("sample", trained_run, "--label", "female")
    assert result.exit_code == 2
    assert (
        result.stderr == "Error: unknown --label 'female'; the model has no labels (it learned names without labels)\n"
    )


def test_labels_match_without_regard_to_case_and_mixes_have_exact_counts(generator):
    places = generator.sample(20, label="PLACE", seed=0)
    assert places == generator.sample(20, label=" place ", seed=0)
    scored = list(generator.iter_sample(30, label={"dinosaur": 1, "Place": 2}, seed=1))
    assert Counter(s.label for s in scored) == {"dinosaur": 10, "Place": 20}
    assert Counter(s.label for s in generator.iter_sample(7, label=["dinosaur", "place"], seed=1)) == {
        "dinosaur": 4,
        "Place": 3,
    }
    counts = generator.label_counts  # without a label: in the proportions of the training names
    default = Counter(s.label for s in generator.iter_sample(100, seed=2))
    assert [default["dinosaur"], default["Place"]] == largest_remainder([Fraction(c, sum(counts)) for c in counts], 100)


def test_the_cli_mixes_by_weight(labelled_run):
    result = invoke("sample", labelled_run, "-n", 12, "--label", "dinosaur:3", "--label", "place", "--seed", 0,
                    "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter(row["label"] for row in rows) == {"dinosaur": 9, "Place": 3}
    assert invoke("sample", labelled_run, "-n", 3, "--label", "place").stdout.count("\n") == 3  # text: names only
    bad = invoke("sample", labelled_run, "--label", "place:0")
    assert bad.exit_code == 2 and "'place:0' gives the weight 0; a weight must be a positive number" in bad.stderr


def test_the_label_plan_interleaves_exact_counts():
    assert LabelPlan([Fraction(1, 2)] * 2, 10).labels_of(torch.arange(10)).tolist() == [0, 1] * 5
    assert LabelPlan([Fraction(1, 3)] * 3, 6).labels_of(torch.arange(6)).tolist() == [0, 1, 2] * 2
    weights = [Fraction(w, 21) for w in (1, 4, 16)]
    for n in (1, 2, 5, 21, 100, 997):
        plan = LabelPlan(weights, n)
        counts = torch.bincount(plan.labels_of(torch.arange(n)), minlength=3).tolist()
        assert counts == plan.counts == largest_remainder(weights, n)
        assert all(abs(count - n * weight) < 1 for count, weight in zip(counts, weights, strict=True))


def test_seeded_labelled_sampling_is_reproducible_and_shards_write_the_stream(generator):
    mix = {"dinosaur": 1, "Place": 1}
    stream = list(generator.iter_sample(60, seed=9, label=mix))
    assert [(s.name, s.label) for s in stream] == [
        (s.name, s.label) for s in generator.iter_sample(60, seed=9, label=mix, batch_size=7)
    ]
    shards = [list(generator.iter_sample(60, seed=9, label=mix, shard=(k, 4))) for k in range(4)]
    merged = [s for row in itertools.zip_longest(*shards) for s in row if s is not None]
    assert [(s.name, s.label) for s in merged] == [(s.name, s.label) for s in stream]
    # with a filter a rejected name is drawn again for its label: the counts hold, and the batch size changes nothing
    unique = list(generator.iter_sample(60, seed=9, label=mix, unique=True, max_length=12))
    assert Counter(s.label for s in unique) == {"dinosaur": 30, "Place": 30} and len({s.name for s in unique}) == 60
    assert [s.name for s in unique] == generator.sample(60, seed=9, label=mix, unique=True, max_length=12, batch_size=5)


def test_score_is_conditional_given_a_label_and_the_mixture_without(generator, labelled_run):
    names = ["tyrannosaurus", "Glen Ivy", "Oak Rock"]
    mixed = generator.score(names)
    shares = [count / sum(generator.label_counts) for count in generator.label_counts]
    given = [generator.score(names, label=label) for label in generator.labels]
    for i, scored in enumerate(mixed):
        terms = [math.log(share) + by_label[i].log_prob for share, by_label in zip(shares, given, strict=True)]
        assert scored.log_prob == pytest.approx(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0).item())
        assert all(scored.log_prob >= term for term in terms)
        assert scored.label is None and scored.likeliest_label == generator.labels[max(range(2), key=terms.__getitem__)]
        assert given[1][i].label == "Place" and given[1][i].likeliest_label == "Place"
    result = invoke("score", labelled_run, "Glen Ivy", "--label", "place", "--format", "csv")
    assert result.stdout.splitlines()[0] == "name,log_prob,nll_per_char,length,label,likeliest_label"
    assert result.stdout.splitlines()[1].endswith(",8,Place,Place")


def test_most_likely_by_label(generator):
    places = generator.most_likely(5, label="place")
    assert {s.label for s in places} == {"Place"}
    assert [s.name for s in places] == [s.name for s in generator.most_likely(5, label=["Place"])]
    both = generator.most_likely(8)
    shares = {label: count / sum(generator.label_counts) for label, count in zip(generator.labels,
              generator.label_counts, strict=True)}  # fmt: skip
    keys = [math.log(shares[s.label]) + s.log_prob for s in both]
    assert keys == sorted(keys, reverse=True) and len({s.name for s in both}) == 8
    tops = [math.log(shares[label]) + generator.most_likely(1, label=label)[0].log_prob for label in generator.labels]
    assert keys[0] == pytest.approx(max(tops))


def test_evaluate_per_label(labelled_run, generator):
    checkpoint = load_checkpoint(labelled_run)
    labels = [checkpoint.labels[i] for i in checkpoint.val_label_ids]
    report = evaluate(generator, checkpoint.val_names, samples=40, labels=labels)
    assert report.loss == pytest.approx(checkpoint.metrics["val_loss"])
    assert [row.label for row in report.labels] == ["dinosaur", "Place"]
    assert sum(row.names for row in report.labels) == report.names and sum(r.samples for r in report.labels) == 40
    by_chars = sum(row.loss * row.chars for row in report.labels) / report.chars
    assert report.loss == pytest.approx(by_chars)
    result = invoke("evaluate", labelled_run, "--samples", 40, "--format", "json")
    assert [row["label"] for row in json.loads(result.stdout)["labels"]] == ["dinosaur", "Place"]
    text = invoke("evaluate", labelled_run, "--samples", 40).stdout
    assert "\nlabel     names" in text and "\nPlace " in text and "\nall " in text


def test_a_single_label_file_trains_and_samples(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("".join(f"{name}\tDino\n" for name in NAMES))
    run = train(tmp_path, path)
    result = invoke("sample", run, "-n", 5, "--label", "dino", "--seed", 0, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["label"] for line in result.stdout.splitlines()} == {"Dino"}
    generator = Generator.from_checkpoint(run, device="cpu")
    assert generator.sample(5, seed=0) == generator.sample(5, seed=0, label="Dino")
    scored = generator.score(["rex"])[0]
    assert scored.log_prob == pytest.approx(generator.score(["rex"], label="dino")[0].log_prob)


@pytest.mark.parametrize("extra", [["--set", "model.label_conditioning=state"], ["--set", "model.ensemble=2"],
                                   ["--set", "model.cell=lstm", "--set", "model.label_conditioning=state"],
                                   ["--set", "model.impl=reference"]])  # fmt: skip
def test_conditioning_modes_ensembles_and_reference_cells_train_and_sample(tmp_path, labelled_file, extra):
    generator = Generator.from_checkpoint(train(tmp_path, labelled_file, *extra), device="cpu")
    scored = list(generator.iter_sample(6, seed=0, label=["dinosaur", "place"]))
    assert [s.label for s in scored] == ["dinosaur", "Place"] * 3
    assert generator.most_likely(2, label="dinosaur")[0].label == "dinosaur"


@pytest.mark.parametrize("conditioning", ["input", "state"])
@pytest.mark.parametrize("ensemble", [1, 2])
def test_the_step_is_the_forward_pass_with_labels(conditioning, ensemble):
    config = ModelConfig(cell="lstm", embedding_dim=6, hidden_size=5, num_layers=2, dropout=0.0, ensemble=ensemble,
                         label_dim=3, label_conditioning=conditioning)  # fmt: skip
    model = build_model(9, config, 4).eval()
    assert list(parameter_shapes(9, config, 4)) == [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    tokens, labels = torch.randint(9, (3, 6)), torch.tensor([0, 3, 1])
    with torch.no_grad():
        logits, _ = model(tokens, labels=labels)
        state, steps = None, []
        for t in range(6):
            step_logits, state = model.step(tokens[:, t], state, labels)
            steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)
    other = model(tokens, labels=torch.tensor([1, 0, 2]))[0]
    assert not torch.allclose(other, logits)  # the label matters
    with pytest.raises(ValueError, match="takes labels"):
        model(tokens)


def test_an_unlabelled_model_is_unchanged():
    checkpoint = load_checkpoint(bundled_model())
    assert checkpoint.labels is None and checkpoint.label_counts is None
    assert not any("label" in key for key in checkpoint.model_state)
    model = checkpoint.build_model()
    assert list(model.state_dict()) == [name for name, _ in parameter_shapes(len(checkpoint.vocab),
                                                                             checkpoint.config.model)]  # fmt: skip
    assert not any(key.startswith("label") for key in checkpoint.to_dict())
    assert Generator.pretrained(device="cpu").labels is None


def test_damaged_labels_are_one_sentence(labelled_run, tmp_path):
    payload = load_checkpoint(labelled_run).to_dict()
    cases = {
        "twice": ({"labels": ["dinosaur", "DINOSAUR"]}, "labels holds a label twice"),
        "counts": ({"label_counts": [1, 1]}, "label_counts must count each label's training names"),
        "index": ({"val_label_ids": [5] * len(payload["val_names"])}, "val_label_ids holds an index past the 2 labels"),
        "form": ({"labels": ["dinosaur", " Place"]}, "labels holds ' Place', which is not a label in normal form"),
        "kind": ({"labels": "dinosaur"}, "labels must be a list of 1 to 10,000 strings"),
    }
    for name, (change, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(seal(payload | change), path)
        result = invoke("sample", path)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, name
        assert result.stderr.startswith(f"Error: checkpoint {path} is damaged: {message}"), name
    without = tmp_path / "without.pt"
    torch.save(seal({k: v for k, v in payload.items() if k != "label_counts"}), without)
    with pytest.raises(DinogenError, match="it has labels but lacks the other label fields"):
        load_checkpoint(without)


def test_a_labelled_run_resumes(labelled_file, tmp_path):
    run = train(tmp_path, labelled_file)
    result = invoke("train", "--resume", run, "-q", "--set", "train.max_steps=50")
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(f"{run}/last.pt")
    assert checkpoint.step == 50 and checkpoint.labels == ["dinosaur", "Place"]


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "onnx_sample.py"


@pytest.mark.parametrize(
    "extra", [[], ["--set", "model.label_conditioning=state", "--set", "model.cell=lstm", "--set", "model.ensemble=2"]]
)
def test_the_exported_step_and_page_write_names_for_a_label(labelled_file, tmp_path, extra):
    run = train(tmp_path, labelled_file, *extra)
    generator = Generator.from_checkpoint(run, device="cpu")
    assert invoke("export", run, "-o", tmp_path / "model.onnx").exit_code == 0
    description = json.loads((tmp_path / "model.json").read_text())
    assert description["labels"] == ["dinosaur", "Place"] and ("initial_states" in description) == bool(extra)
    args = [EXAMPLE, tmp_path / "model.onnx", "-n", 8, "--label", "place", "--seed", 1]
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    scores = generator.score([name for _, name in lines], label="place")
    assert max(abs(s.log_prob - float(value)) for s, (value, _) in zip(scores, lines, strict=True)) <= 1e-4
    if find_browser() is None:
        pytest.skip("no Chromium: the page's labels are checked where it is installed")
    assert invoke("export", run, "-o", tmp_path / "names.html").exit_code == 0
    report = check_page(tmp_path / "names.html", {"prefixes": [""], "settings": {"label": "PLACE", "seed": 2}})
    first = generator.model.step(torch.tensor([BOUNDARY]), None, torch.tensor([1]))[0].softmax(-1)[0].double()
    assert (torch.tensor(report["probabilities"][""], dtype=torch.float64) - first).abs().max() <= 1e-5
    page_scores = generator.score([entry["name"] for entry in report["names"]], label="Place")
    assert max(abs(s.log_prob - e["log_prob"]) for s, e in zip(page_scores, report["names"], strict=True)) <= 1e-4
