"""Any file given as a checkpoint loads whole or fails with one sentence: random bytes, truncations,
bit flips, re-zipped archives and crafted fields, through the library and the CLI (issue 13, 1 and 2).

Each generator returns (name, file bytes) pairs; `outcomes` loads them all and counts what each gave.
"""

import copy
import io
import math
import random
import subprocess
import sys
import zipfile
from collections import Counter

import pytest
import torch
from helpers import WritesAFile, invoke, payload_span
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dinogen.checkpoint import load_checkpoint, seal
from dinogen.errors import DinogenError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns about some damaged archives


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _same(a, b) -> bool:
    """Deep equality, tensors included (NaN-free data)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


_KINDS_OF_ERROR = ["checksum mismatch", "is damaged:", "cannot read checkpoint", "nothing in it ran",
                   "is not a dinogen checkpoint", "upgrade dinogen", "no training state"]  # fmt: skip


def outcomes(directory, files, original: dict) -> dict[str, str]:
    """Load each file with the library: the kind of error each gave, or that it loaded identical."""
    results = {}
    for name, content in files:
        path = directory / f"{name}.pt"
        path.write_bytes(content)
        try:
            loaded = load_checkpoint(path)
        except DinogenError as err:
            message = str(err)
            assert "\n" not in message and str(path) in message, message
            results[name] = next(kind for kind in _KINDS_OF_ERROR if kind in message)
        else:
            assert _same(loaded.to_dict(), original), f"{name} loaded but differs"
            results[name] = "loaded identical"
    print(files[0][0].split("-")[0], len(files), dict(Counter(results.values())))
    return results


@pytest.fixture(scope="module")
def real(trained_run):
    """A real checkpoint with its training state: the file's bytes and its payload."""
    path = trained_run / "last.pt"
    return path.read_bytes(), load_checkpoint(path).to_dict()


def random_files() -> list[tuple[str, bytes]]:
    """Random bytes of many sizes, bare or behind the magic bytes of a zip or of a pickle."""
    rng = random.Random(13)
    sizes = [*range(64), *(int(1.06**k) for k in range(72, 200))]
    files = []
    for size in sizes:
        body = rng.randbytes(size)
        files += [
            (f"random-{size}", body),
            (f"zip-{size}", b"PK\x03\x04" + body),
            (f"pickle-{size}", b"\x80\x02" + body),
        ]
    return files + [("text-todo", b"todo\n"), ("text-hello", b"hello"), ("zeros", bytes(5000))]


def truncated_files(content: bytes) -> list[tuple[str, bytes]]:
    offsets = sorted({*range(0, 200), *range(0, len(content), max(1, len(content) // 150)), len(content) - 1})
    return [(f"truncated-{offset}", content[:offset]) for offset in offsets]


def flipped_files(content: bytes) -> list[tuple[str, bytes]]:
    """One bit flipped: at random positions, and at every byte of the start and the end (zip headers)."""
    rng = random.Random(7)
    positions = sorted({*rng.sample(range(len(content)), 300), *range(120), *range(len(content) - 250, len(content))})
    files = []
    for position in positions:
        flipped = bytearray(content)
        flipped[position] ^= 1 << rng.randrange(8)
        files.append((f"flip-{position}", bytes(flipped)))
    return files


def rezipped_files(content: bytes) -> list[tuple[str, bytes]]:
    """The archive rewritten with one entry removed, renamed, emptied or replaced by another's, or compressed."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}

    def zipped(items, compression=zipfile.ZIP_STORED) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in items.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    files = [("rezip-same", zipped(entries)), ("rezip-deflated", zipped(entries, zipfile.ZIP_DEFLATED))]
    names = list(entries)
    for i, name in enumerate(names):
        other = names[(i + 1) % len(names)]
        files += [
            (f"rezip-{i}-removed", zipped({k: v for k, v in entries.items() if k != name})),
            (f"rezip-{i}-renamed", zipped({(k + "x" if k == name else k): v for k, v in entries.items()})),
            (f"rezip-{i}-emptied", zipped(entries | {name: b""})),
            (f"rezip-{i}-halved", zipped(entries | {name: entries[name][: len(entries[name]) // 2]})),
            (f"rezip-{i}-swapped", zipped(entries | {name: entries[other]})),
            (f"rezip-{i}-doubled", zipped(entries | {name: entries[name] * 2})),
        ]
    return files


def _set(*path_and_value):
    """A change to the payload: the value at a path of keys (or list indices) set, or deleted if it is _DELETE."""
    *path, value = path_and_value

    def change(payload: dict) -> None:
        target = payload
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return change


_DELETE = object()
_OPTIMIZER = ("trainer_state", "optimizer")
_MOMENTS = (*_OPTIMIZER, "state", 2)
_GROUP = (*_OPTIMIZER, "param_groups", 0)
_FIELDS = ["config", "vocab", "model_state", "train_names", "val_names", "step", "epoch", "metrics", "trainer_state",
           "data_path", "device", "created", "dinogen_version", "torch_version"]  # fmt: skip

# (name, change to a real payload, what the error says). Each is written as format 2 (sealed) and format 1.
CRAFTED = [
    *((f"no-{field}", _set(field, _DELETE), f"it lacks the field {field}") for field in _FIELDS),
    *((f"{field}-none", _set(field, None), f"{field} must be") for field in _FIELDS if field != "config"),
    ("extra-field", _set("extra", 1), "unknown field 'extra'"),
    ("config-none", _set("config", None), "config must be a mapping"),
    ("config-unknown-key", _set("config", "model", "cells", "gru"), "config: unknown config key 'model.cells'"),
    ("config-bad-value", _set("config", "model", "dropout", 2.0), "config: model.dropout must be in [0, 1)"),
    (
        "another-cell",
        _set("config", "model", "cell", "lstm"),
        "rnn.weight_ih_l0 has shape (48, 8) where the config needs (64, 8)",
    ),
    ("another-size", _set("config", "model", "hidden_size", 17), "where the config needs"),
    ("huge-size", _set("config", "model", "hidden_size", 10**12), "model.hidden_size must be in [1, 16,384]"),
    ("more-layers", _set("config", "model", "num_layers", 2), "lacks the weight rnn.weight_ih_l1"),
    ("huge-layers", _set("config", "model", "num_layers", 10**9), "model.num_layers must be in [1, 32]"),
    ("an-ensemble", _set("config", "model", "ensemble", 2), "lacks the weight members.0.embedding.weight"),
    ("huge-ensemble", _set("config", "model", "ensemble", 10**9), "model.ensemble must be in [1, 16]"),
    ("vocab-string", _set("vocab", lambda chars: "".join(chars)), "vocab must be a list of characters"),
    (
        "vocab-ints",
        _set("vocab", lambda chars: list(range(len(chars)))),
        "vocab holds an integer (0), not a single character",
    ),
    ("vocab-short", _set("vocab", lambda chars: chars[:-1]), "uses a character the vocab lacks"),
    ("vocab-duplicate", _set("vocab", lambda chars: [chars[0], *chars]), "vocab has a duplicate character 'a'"),
    ("vocab-duplicate-same-size", _set("vocab", lambda chars: [chars[1], *chars[1:]]), "duplicate character 'b'"),
    ("vocab-boundary", _set("vocab", lambda chars: ["", *chars[1:]]), "vocab holds a string (''), not a single"),
    ("vocab-pairs", _set("vocab", lambda chars: [c + c for c in chars]), "not a single character"),
    ("names-ints", _set("train_names", [1, 2]), "train_names must be a list of strings"),
    ("names-empty", _set("train_names", []), "train_names is empty"),
    ("names-unknown-char", _set("val_names", 0, "tyr\u20ac"), "val_names uses a character the vocab lacks: '\u20ac'"),
    ("step-string", _set("step", "20"), "step must be a non-negative integer, got a string ('20')"),
    ("step-negative", _set("step", -1), "step must be a non-negative integer, got an integer (-1)"),
    ("step-float", _set("step", 1.5), "step must be a non-negative integer"),
    ("step-bool", _set("step", True), "step must be a non-negative integer"),
    (
        "epoch-huge",
        _set("epoch", -(2**2000)),
        "epoch must be a non-negative integer, got an integer (-114813069527425452…53762184851149029376)",
    ),
    ("metrics-list", _set("metrics", []), "metrics must be a mapping"),
    (
        "metrics-tensor",
        _set("metrics", "val_loss", torch.zeros(2)),
        "metrics must be a mapping of names to plain values",
    ),
    ("created-int", _set("created", 5), "created must be a string"),
    ("weights-list", _set("model_state", lambda state: list(state.values())), "model_state must be a mapping"),
    ("weight-missing", _set("model_state", "head.bias", _DELETE), "model_state lacks the weight head.bias"),
    ("weight-extra", _set("model_state", "head.scale", torch.ones(1)), "model_state has weights that a gru"),
    ("weight-shape", _set("model_state", "head.bias", torch.zeros(3)), "model_state head.bias has shape (3,)"),
    ("weight-transposed", _set("model_state", "head.weight", lambda w: w.T), "head.weight has shape"),
    ("weight-ints", _set("model_state", "head.bias", lambda w: w.long()), "must be a floating-point tensor"),
    ("weight-string", _set("model_state", "head.bias", "0.5"), "must be a floating-point tensor, got a string"),
    ("weight-sparse", _set("model_state", "head.bias", lambda w: w.to_sparse()), "must be a floating-point tensor"),
    (
        "weight-nan",
        _set("model_state", "head.bias", lambda w: w.index_fill(0, torch.tensor([3]), math.nan)),
        "model_state head.bias holds NaN or infinite values",
    ),  # fmt: skip
    ("weight-inf", _set("model_state", "rnn.weight_hh_l0", lambda w: w * math.inf), "holds NaN or infinite"),
    ("trainer-list", _set("trainer_state", []), "trainer_state must be a mapping"),
    ("trainer-no-optimizer", _set("trainer_state", "optimizer", _DELETE), "trainer_state lacks the field optimizer"),
    ("trainer-extra", _set("trainer_state", "momentum", 0.9), "trainer_state has an unknown field 'momentum'"),
    ("moment-shape", _set(*_MOMENTS, "exp_avg", torch.zeros(7, 7)), "optimizer exp_avg 2 has shape (7, 7)"),
    ("moment-bigger", _set(*_MOMENTS, "exp_avg_sq", lambda m: torch.cat([m, m])), "exp_avg_sq 2 has shape"),
    ("moment-missing", _set(*_MOMENTS, "exp_avg", _DELETE), "must hold step, exp_avg and exp_avg_sq"),
    ("moment-ints", _set(*_MOMENTS, "exp_avg", lambda m: m.int()), "must be a floating-point tensor"),
    ("moment-nan", _set(*_MOMENTS, "exp_avg", lambda m: m * math.nan), "holds NaN or infinite values"),
    ("moment-step-vector", _set(*_MOMENTS, "step", torch.zeros(2)), "optimizer step 2 has shape (2,)"),
    ("moment-unknown-weight", _set(*_OPTIMIZER, "state", 99, {}), "unknown weight 99"),
    ("moment-string-index", _set(*_OPTIMIZER, "state", "0", {}), "unknown weight '0'"),
    ("two-groups", _set(*_OPTIMIZER, "param_groups", lambda groups: groups * 2), "must have one parameter group"),
    ("group-params", _set(*_GROUP, "params", [0, 1]), "must cover the 7 weights"),
    ("group-lr", _set(*_GROUP, "lr", "fast"), "needs numbers lr, eps and weight_decay"),
    ("group-betas", _set(*_GROUP, "betas", (0.9,)), "betas must be two numbers"),
    ("group-amsgrad", _set(*_GROUP, "amsgrad", True), "turns on one of amsgrad"),
    ("group-capturable", _set(*_GROUP, "capturable", True), "turns on one of amsgrad"),
    ("group-fused", _set(*_GROUP, "fused", "yes"), "foreach and fused must be true, false or null"),
    ("schedule-none", _set("trainer_state", "schedule", None), "trainer_state schedule must hold"),
    ("schedule-string", _set("trainer_state", "schedule", "waiting", "2"), "trainer_state schedule must hold"),
    ("scaler-partial", _set("trainer_state", "scaler", {"scale": 2.0}), "trainer_state scaler must be"),
    ("trainer-step-string", _set("trainer_state", "step", "5"), "trainer_state step must be a non-negative integer"),
    ("elapsed-nan", _set("trainer_state", "elapsed", math.nan), "trainer_state elapsed must be seconds"),
    ("best-string", _set("trainer_state", "best_val_loss", "low"), "trainer_state best_val_loss must be a number"),
    ("history-ints", _set("trainer_state", "history", [1, 2]), "trainer_state history must be a list of metrics"),
    ("rng-short", _set("trainer_state", "cpu_rng", lambda r: r[:100]), "trainer_state cpu_rng is not a state"),
    ("rng-float", _set("trainer_state", "cpu_rng", lambda r: r.float()), "trainer_state cpu_rng is not a state"),
    ("rng-zeros", _set("trainer_state", "cpu_rng", lambda r: torch.zeros_like(r)), "cpu_rng is not a state of torch's"),
    ("cuda-rng-string", _set("trainer_state", "cuda_rng", "x"), "trainer_state cuda_rng must be"),
]


def crafted_files(payload: dict) -> list[tuple[str, bytes, str]]:
    files = []
    for name, change, message in CRAFTED:
        changed = copy.deepcopy(payload)
        change(changed)
        files.append((f"crafted-{name}", _torch_bytes(seal(changed)), message))
        files.append((f"crafted-v1-{name}", _torch_bytes(changed | {"format_version": 1}), message))
    return files


def outer_files(payload: dict) -> list[tuple[str, bytes, str]]:
    """The file's outer mapping crafted: format version, digest and payload."""
    sealed = seal(payload)

    def outer(**changes) -> bytes:
        return _torch_bytes({key: value for key, value in (sealed | changes).items() if value is not _DELETE})

    sealed_list = seal([1, 2])
    return [
        ("format-string", outer(format_version="2"), "format_version must be a positive integer, got a string ('2')"),
        ("format-float", outer(format_version=2.0), "format_version must be a positive integer, got a number (2.0)"),
        ("format-zero", outer(format_version=0), "format_version must be a positive integer, got an integer (0)"),
        ("format-none", outer(format_version=None), "format_version must be a positive integer, got null"),
        ("format-newer", outer(format_version=3), "has format version 3, newer than this dinogen"),
        ("format-huge", outer(format_version=2**2000), "has format version 1148130695274254524…53762184851149029376,"),
        ("no-format", outer(format_version=_DELETE), "is not a dinogen checkpoint"),
        ("a-list", _torch_bytes([sealed]), "is not a dinogen checkpoint"),
        ("digest-wrong", outer(sha256="0" * 64), "is damaged (checksum mismatch)"),
        ("digest-of-another", outer(sha256=seal(payload | {"step": 1})["sha256"]), "checksum mismatch"),
        ("digest-none", outer(sha256=None), "sha256 must be a string, got null"),
        ("no-payload", outer(payload=_DELETE), "it must hold format_version, sha256 and payload"),
        ("extra-key", outer(extra=1), "it must hold format_version, sha256 and payload"),
        ("payload-floats", outer(payload=sealed["payload"].float()), "payload must be a tensor of bytes"),
        ("payload-empty", outer(payload=torch.zeros(0, dtype=torch.uint8)), "payload must be a tensor of bytes"),
        ("payload-a-list", _torch_bytes(sealed_list), "its payload must be a mapping of fields, got a list"),
        (
            "payload-random",
            _torch_bytes(_sealed_bytes(b"PK\x03\x04" + random.Random(1).randbytes(999))),
            "cannot read checkpoint",
        ),
        ("payload-evil", _torch_bytes(_sealed_bytes(_evil_bytes())), "nothing in it ran"),
    ]


def _sealed_bytes(data: bytes) -> dict:
    """Any bytes sealed with a digest that matches them, as someone who knows the format could write."""
    import hashlib

    return {
        "format_version": 2,
        "sha256": hashlib.sha256(data).hexdigest(),
        "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8),
    }


def _evil_bytes() -> bytes:
    import pickle

    buffer = io.BytesIO()
    torch.save({"trap": WritesAFile("/nonexistent/pwned")}, buffer, pickle_module=pickle)
    return buffer.getvalue()


def test_random_bytes_are_refused(tmp_path, real):
    results = outcomes(tmp_path, random_files(), real[1])
    assert len(results) >= 500 and "loaded identical" not in results.values()


def test_every_truncation_is_refused(tmp_path, real):
    results = outcomes(tmp_path, truncated_files(real[0]), real[1])
    assert len(results) >= 300 and "loaded identical" not in results.values()


def test_a_flipped_bit_is_detected_or_harmless(tmp_path, real):
    content, payload = real
    results = outcomes(tmp_path, flipped_files(content), payload)
    span = payload_span(content)
    inside = [result for name, result in results.items() if int(name.split("-")[1]) in span]
    assert len(results) >= 500 and len(inside) >= 250
    assert set(inside) == {"checksum mismatch"}, "any flip in the payload is detected"


def test_rezipped_archives_are_refused_unless_identical(tmp_path, real):
    content = real[0]
    results = outcomes(tmp_path, rezipped_files(content), real[1])
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sizes = [info.file_size for info in archive.infolist()]
    payload_entry = sizes.index(max(sizes))  # the record that holds the payload's bytes
    touched = [result for name, result in results.items() if name.startswith(f"rezip-{payload_entry}-")]
    assert len(results) >= 40 and len(touched) == 6 and "loaded identical" not in touched


@pytest.mark.parametrize("make", [crafted_files, outer_files])
def test_crafted_fields_are_named(tmp_path, real, make):
    files = make(real[1])
    for name, content, message in files:
        path = tmp_path / f"{name}.pt"
        path.write_bytes(content)
        with pytest.raises(DinogenError) as caught:
            load_checkpoint(path)
        assert message in str(caught.value) and "\n" not in str(caught.value), name
    print(make.__name__, len(files))


def test_at_least_a_thousand_files(real):
    content, payload = real
    generated = [random_files(), truncated_files(content), flipped_files(content), rezipped_files(content),
                 crafted_files(payload), outer_files(payload)]  # fmt: skip
    assert sum(map(len, generated)) >= 1000


def test_format_1_files_still_load(tmp_path, real, trained_run):
    """A file of the previous format (the payload's fields at the top level, no digest) loads, checked the same."""
    payload = real[1]
    (tmp_path / "v1.pt").write_bytes(_torch_bytes(payload | {"format_version": 1}))
    assert _same(load_checkpoint(tmp_path / "v1.pt").to_dict(), payload)
    old = invoke("sample", tmp_path / "v1.pt", "-n", 5, "--seed", 3, "--device", "cpu")
    new = invoke("sample", trained_run / "last.pt", "-n", 5, "--seed", 3, "--device", "cpu")
    assert old.exit_code == 0 and old.stdout == new.stdout


def test_a_checkpoint_without_training_state_samples_but_does_not_resume(tmp_path, real):
    (tmp_path / "weights.pt").write_bytes(_torch_bytes(seal(real[1] | {"trainer_state": {}})))
    assert invoke("sample", tmp_path / "weights.pt", "-n", 3, "--device", "cpu").exit_code == 0
    result = invoke("train", "--resume", tmp_path / "weights.pt")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'weights.pt'} holds no training state " + (
        "(optimizer, schedule, random state) to resume from"
    )


def _commands(path):
    return [
        ["sample", path, "--device", "cpu"],
        ["score", path, "tyrannosaurus", "--device", "cpu"],
        ["evaluate", path, "--samples", 10, "--device", "cpu"],
        ["info", path],
        ["train", "--resume", path, "--set", "train.device=cpu"],
    ]


def test_the_cli_says_one_sentence_for_every_kind(tmp_path, real):
    content, payload = real
    kinds = [random_files(), truncated_files(content), flipped_files(content), rezipped_files(content),
             [file[:2] for file in crafted_files(payload)], [file[:2] for file in outer_files(payload)]]  # fmt: skip
    tried = Counter()
    for files in kinds:
        for i, (name, data) in enumerate(files[:: max(1, len(files) // 25)]):
            path = tmp_path / f"{name}.pt"
            path.write_bytes(data)
            args = _commands(path)[i % 5]
            result = invoke(*args)
            if result.exit_code == 0 and name.startswith(("flip", "rezip")):
                continue  # a harmless flip: the file loads identical
            assert result.exit_code == 1, (name, args, result.output)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, name
            tried[args[0]] += 1
    print("cli", dict(tried))
    assert sum(tried.values()) >= 120 and len(tried) == 5


def test_resume_with_moments_of_another_shape_exits_cleanly(tmp_path, real):
    """It used to crash inside the fused AdamW kernel (signal 11); a subprocess catches a crash."""
    changed = copy.deepcopy(real[1])
    changed["trainer_state"]["optimizer"]["state"][2]["exp_avg"] = torch.zeros(3, 3)
    (tmp_path / "moments.pt").write_bytes(_torch_bytes(seal(changed)))
    path = tmp_path / "moments.pt"
    command = [sys.executable, "-m", "dinogen", "train", "--resume", str(path), "--set", "train.max_steps=40", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: checkpoint {tmp_path / 'moments.pt'} is damaged: trainer_state optimizer exp_avg 2 "
        "has shape (3, 3) where the config needs (48, 16)"
    ]


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
values = plain | st.builds(torch.full, st.lists(st.integers(0, 3), max_size=2).map(tuple), st.floats(width=32))
places = st.sampled_from([
    (field,) for field in _FIELDS] + [("config", "model"), ("config", "model", "hidden_size"), ("vocab", 0),
    ("model_state", "head.bias"), ("trainer_state", "schedule"), ("trainer_state", "scaler"), _OPTIMIZER,
    (*_OPTIMIZER, "state"), (*_OPTIMIZER, "param_groups"), _GROUP, (*_GROUP, "betas"), _MOMENTS, (*_MOMENTS, "step"),
])  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=places, value=values)
def test_any_value_anywhere_loads_or_is_named(tmp_path, real, place, value):
    changed = copy.deepcopy(real[1])
    _set(*place, value)(changed)
    path = tmp_path / "any.pt"
    path.write_bytes(_torch_bytes(seal(changed)))
    try:
        loaded = load_checkpoint(path)
    except DinogenError as err:
        assert str(err).startswith(f"checkpoint {path} is damaged: "), str(err)
    else:
        loaded.summary()  # what `info` shows works on whatever loaded


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), magic=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02"]))
def test_any_bytes_are_refused(tmp_path, data, magic):
    path = tmp_path / "bytes.pt"
    path.write_bytes(magic + data)
    with pytest.raises(DinogenError):
        load_checkpoint(path)
