import re

import pytest
import torch
from torch import nn

from dinogen.bundled import bundled_file
from dinogen.config import ModelConfig
from dinogen.data import BOUNDARY, IGNORE_INDEX, EncodedNames, Vocab, parse_names, read_names, split_names
from dinogen.errors import DinogenError
from dinogen.model import CharRNN


def test_bundled_dinosaur_list_format():
    lines = bundled_file("data/dinos.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "file ends with one newline"
    names = lines[:-1]
    assert len(names) >= 1000
    assert all(re.fullmatch(r"[a-z]+", name) for name in names), "lowercase a-z only"
    assert names == sorted(set(names)), "sorted, no duplicates"


def test_vocab_round_trip():
    names = ["tyrannosaurus", "Über", "ñandú"]
    vocab = Vocab.from_names(names)
    assert len(vocab) == len(set("".join(names))) + 1
    for name in names:
        ids = vocab.encode(name)
        assert BOUNDARY not in ids
        assert vocab.decode(ids) == name
    assert Vocab(vocab.to_list()) == vocab


def test_read_names_cleans_lines(tmp_path):
    path = tmp_path / "names.txt"
    decomposed = "zu\u0308rich"  # u + combining diaeresis: NFC makes it one character
    path.write_bytes(("\ufeffAlpha\r\n  beta  \r\n\r\nALPHA\n" + decomposed + "\n\n").encode("utf-8"))
    assert read_names(path) == ["alpha", "beta", "zürich"]
    assert read_names(path, lowercase=False) == ["Alpha", "beta", "ALPHA", "zürich"]


def test_parse_names_keeps_first_occurrence():
    assert parse_names("b\na\nb\nc\na") == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no names"),
        (b"\n  \n\r\n", "holds no names"),
        (b"alpha\nbeta\n\xff\xfe\n", "not valid utf-8 text (line 3)"),
    ],
)
def test_read_names_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "names.txt"
    path.write_bytes(content)
    with pytest.raises(DinogenError, match=re.escape(message)):
        read_names(path)


def test_read_names_missing_and_directory(tmp_path):
    with pytest.raises(DinogenError, match="does not exist"):
        read_names(tmp_path / "absent.txt")
    with pytest.raises(DinogenError, match="holds no names files; a folder of names holds one file per label"):
        read_names(tmp_path)  # a folder is a labelled corpus, one file a label


def test_split_is_deterministic_and_disjoint():
    names = [f"name{i}" for i in range(100)]
    train, val = split_names(names, 0.1, seed=3)
    assert (train, val) == split_names(names, 0.1, seed=3)
    assert split_names(names, 0.1, seed=4) != (train, val)
    assert len(val) == 10 and not set(train) & set(val) and set(train) | set(val) == set(names)


def test_split_edge_cases():
    assert split_names(["a", "b"], 0.0, seed=0) == (["a", "b"], [])
    assert len(split_names(["a", "b"], 0.01, seed=0)[1]) == 1  # at least one held out
    with pytest.raises(DinogenError, match="at least 2"):
        split_names(["a"], 0.1, seed=0)


def test_encoded_names_layout():
    vocab = Vocab.from_names(["ab", "c"])
    data = EncodedNames(["ab", "c"], vocab)
    a, b, c = vocab.encode("abc")
    assert data.inputs.tolist() == [[BOUNDARY, a, b], [BOUNDARY, c, BOUNDARY]]
    assert data.targets.tolist() == [[a, b, BOUNDARY], [c, BOUNDARY, IGNORE_INDEX]]
    assert data.num_chars == 5


def test_batch_plan_covers_every_name_once_and_buckets_lengths():
    names = [("x" * (i % 13 + 1)) + str(i) for i in range(500)]
    data = EncodedNames(names, Vocab.from_names(names))
    plan = data.batch_plan(16, seed=0)
    assert sorted(torch.cat(plan).tolist()) == list(range(500))
    assert [rows.tolist() for rows in plan] == [rows.tolist() for rows in data.batch_plan(16, seed=0)]
    padded = sum(len(rows) * int(data.lengths[rows].max()) for rows in plan)
    unbucketed = sum(len(rows) * int(data.lengths[rows].max()) for rows in torch.randperm(500).split(16))
    assert padded < unbucketed


def test_padding_does_not_change_the_loss():
    names = ["ab", "abcdefgh"]
    vocab = Vocab.from_names(names)
    torch.manual_seed(0)
    model = CharRNN(len(vocab), ModelConfig(hidden_size=8, embedding_dim=4, dropout=0.0)).eval()
    alone = EncodedNames(["ab"], vocab)
    together = EncodedNames(names, vocab)  # "ab" now padded to the longer name's width
    loss_alone = nn.functional.cross_entropy(
        model(alone.inputs)[0][0], alone.targets[0], ignore_index=IGNORE_INDEX, reduction="sum"
    )
    loss_padded = nn.functional.cross_entropy(
        model(together.inputs)[0][0], together.targets[0], ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert together.inputs.shape[1] > alone.inputs.shape[1]
    torch.testing.assert_close(loss_alone, loss_padded)
