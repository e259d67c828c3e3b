"""The pure parts of the benchmark scripts: what they compute besides timing and training (no faker needed)."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if not BENCHMARKS.is_dir():
    pytest.skip("the benchmarks/ folder is not here (an installed sdist)", allow_module_level=True)
sys.path.insert(0, str(BENCHMARKS))  # the scripts import their helpers as top-level modules, as when run

import labels  # noqa: E402

from dinogen.data import read_labelled_names  # noqa: E402

TOY = {
    "fi": ["aino", "aila", "kaisa", "tuula", "päivi", "jussi", "kalle", "pekka", "matti", "seppo"],
    "it": ["giulia", "chiara", "francesca", "giuseppe", "lorenzo", "matteo", "paolo", "giorgio", "sergio", "franco"],
    "cs": ["jiří", "dušan", "bořek", "radmila", "zdeňka", "jaroslav", "květa", "miloš", "ludmila", "přemysl"],
}


def test_the_classifier_finds_each_toy_label():
    classifier = labels.NgramClassifier(TOY)
    assert {label: classifier.share(names, label) for label, names in TOY.items()} == {"fi": 1, "it": 1, "cs": 1}
    assert classifier.classify("giovanni") == "it" and classifier.classify("jukka") == "fi"
    assert classifier.classify("řehoř") == "cs"
    assert classifier.classify("xqz") in TOY  # nothing it knows: every label ties, one is still named


def test_the_classifier_counts_n_grams_between_boundary_marks():
    assert labels.NgramClassifier.grams("ab") == ["^", "a", "b", "$", "^a", "ab", "b$", "^ab", "ab$", "^ab$"]


def test_a_name_of_several_labels_is_dropped_from_all():
    kept, dropped = labels.one_label_each({"x": ["anna", "aino"], "y": ["anna", "giulia"], "z": ["anna", "jiří"]})
    assert kept == {"x": ["aino"], "y": ["giulia"], "z": ["jiří"]}
    assert dropped == {"x": 1, "y": 1, "z": 1}


def test_the_corpus_holds_out_test_names_per_label_that_no_model_trains_on():
    named = {"x": ["qa", "ab", "ba", "aa", "bb", "aab", "abb", "bab", "aba", "bba"],
             "y": ["zc", "cd", "dc", "cc", "dd", "ccd", "cdd", "dcd", "cdc", "ddc"]}  # fmt: skip
    corpus = labels.Corpus.split(named, dict.fromkeys(named, 0), 0.5, seed=0)
    for label, names in named.items():
        assert sorted(corpus.train[label] + corpus.test[label]) == sorted(names)
        assert 4 <= len(corpus.test[label]) <= 5 and not set(corpus.test[label]) & corpus.known
        trained_chars = set("".join(corpus.train[label]))
        assert all(set(name) <= trained_chars for name in corpus.test[label])  # every model can score them
    assert "qa" in corpus.train["x"] and "zc" in corpus.train["y"]  # held out, no model could score their q, z


def test_per_label_budgets_add_up_to_the_budget():
    train = {"a": ["x"] * 30, "b": ["y"] * 10}
    assert labels.per_label_budgets(train, 100, "proportional") == {"a": 75, "b": 25}
    assert labels.per_label_budgets(train, 100, "equal") == {"a": 50, "b": 50}


def test_the_corpus_folder_is_read_back_with_its_labels(tmp_path):
    corpus = labels.Corpus.split(TOY, dict.fromkeys(TOY, 0), 0.3, seed=0)
    names, read_labels = read_labelled_names(corpus.folder(tmp_path / "train"), lowercase=True)
    assert sorted(zip(names, read_labels, strict=True)) == sorted(
        (name, label) for label, train in corpus.train.items() for name in train
    )
