"""Fuzz and fault cases for input: numbers at and past their bounds, files that are not regular files or are
huge, YAML bombs, names files of odd bytes and characters. Each runs through the CLI in-process under a
time limit and must give a result or one sentence: exit 0/1/2/3, a single `Error:` line, no traceback.
"""

import os
import signal
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from helpers import NAMES, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dinogen.config import Config, ConfigError, load_config
from dinogen.data import read_names
from dinogen.errors import SHOWN_CHARS, DinogenError
from dinogen.limits import CONFIG_FILE_BYTES, NAMES_FILE_BYTES

CASE_SECONDS = 10  # generous on a loaded 2-core machine; a hang is minutes, not seconds


class Hung(Exception):
    pass


@contextmanager
def time_limit(seconds: float = CASE_SECONDS):
    """Raise Hung in the main thread after `seconds` (a blocking open or read is interrupted too)."""

    def expire(signum, frame):
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(*args, ok=(0, 1, 2, 3)):
    """Invoke the CLI under the time limit; check the contract for bad input and return the result."""
    with time_limit():
        result = invoke(*args)
    assert not isinstance(result.exception, Hung), args
    assert result.exit_code in ok, (args, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    if result.exit_code in (1, 2):
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], (args, result.stderr)
        assert len(errors[0]) < 2 * SHOWN_CHARS + 400, (args, errors[0][:300])  # never echoes a huge input
    return result


# ---------------------------------------------------------------------------------------------- class 3: numbers

EXTREMES = ["0", "-1", str(2**63), str(2**64), str(-(2**63) - 1), str(10**30), "1e308", "inf", "nan", "1e-40"]

NUMERIC_KEYS = [
    "data.val_fraction", "data.max_length", "model.embedding_dim", "model.hidden_size", "model.num_layers",
    "model.dropout", "model.ensemble", "train.epochs", "train.max_steps", "train.max_time", "train.batch_size",
    "train.base_batch_size", "train.gpu_batch_size", "train.lr",
    "train.warmup_steps", "train.final_lr_fraction", "train.plateau_patience", "train.weight_decay",
    "train.grad_clip", "train.eval_every", "train.patience", "train.min_delta", "train.seed",
]  # fmt: skip


def dry_run(names_file, tmp_path, *extra):
    return run_case("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "run", "--dry-run", *extra)


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_every_config_number_at_and_past_its_bounds(names_file, tmp_path, key):
    for value in EXTREMES:
        result = dry_run(names_file, tmp_path, "--set", f"{key}={value}")
        if value in ("inf", "nan", "1e308", str(10**30), str(2**63), str(2**64)) and key != "train.seed":
            assert result.exit_code == 2, (key, value, result.stderr)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", EXTREMES)
def test_seeds_of_any_size_train_and_evaluate(names_file, trained_run, tmp_path, value):
    as_int = value.lstrip("-").isdigit()
    for args in (["--seed", value], ["--set", f"train.seed={value}"]):
        assert dry_run(names_file, tmp_path, *args).exit_code == (0 if as_int else 2)
    config = tmp_path / "seed.yaml"
    config.write_text(f"train:\n  seed: {value}\n  max_steps: 5\n  epochs: null\n")
    result = run_case("train", "-c", config, "--data", names_file, "-o", tmp_path / "run", "--dry-run")
    assert result.exit_code == (0 if as_int else 2)
    result = run_case("evaluate", trained_run, "--samples", "5", "--seed", value)
    assert result.exit_code == (0 if as_int else 2)


def test_seeds_are_taken_modulo_2_64(names_file):
    from helpers import tiny_config

    assert tiny_config(names_file, seed=-1).train.seed == 2**64 - 1
    assert tiny_config(names_file, seed=2**64 + 5).train.seed == 5


SAMPLE_OPTIONS = ["-n", "-t", "--top-k", "--top-p", "--min-length", "--max-length", "--seed", "--batch-size"]


@pytest.mark.parametrize("option", SAMPLE_OPTIONS)
def test_every_sample_number_at_and_past_its_bounds(trained_run, option):
    for value in EXTREMES:
        result = run_case("sample", trained_run, *(["-n", "3"] if option != "-n" else []), option, value)
        if value in ("inf", "nan", "1e308", str(10**30), str(2**64)) and option != "--seed":
            assert result.exit_code == 2, (option, value)
    for value in EXTREMES:
        run_case("sample", trained_run, "-n", "3", "--seed", "1", "--shard", f"0/{value}")


def test_sample_at_the_documented_bounds(trained_run):
    assert run_case("sample", trained_run, "-n", "2", "--max-length", "1000", "--seed", "0").exit_code == 0
    assert run_case("sample", trained_run, "-n", "2", "--max-length", "1001").exit_code == 2
    assert run_case("sample", trained_run, "-n", "2", "--batch-size", "65536", "--seed", "0").exit_code == 0
    assert run_case("sample", trained_run, "-n", "2", "--batch-size", "65537").exit_code == 2
    assert run_case("sample", trained_run, "-n", "2", "-t", "1e-40", "--seed", "0").exit_code == 0
    assert run_case("evaluate", trained_run, "--samples", str(10**6 + 1)).exit_code == 2


def test_a_model_too_large_is_refused_before_allocation(names_file, tmp_path):
    result = dry_run(names_file, tmp_path, "--set", "model.hidden_size=16384", "--set", "model.num_layers=32")
    assert result.exit_code == 2 and "parameters, more than the 100,000,000 dinogen allows" in result.stderr


# ---------------------------------------------------------------------------------- class 4: files and YAML


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """Paths that are not regular files, or are too large: name -> path."""
    root = tmp_path_factory.mktemp("odd")
    os.mkfifo(root / "fifo")
    (root / "folder").mkdir()
    os.symlink(root / "loop", root / "loop")
    with open(root / "huge.txt", "wb") as file:
        file.truncate(NAMES_FILE_BYTES + 1)  # sparse: costs no disk
    (root / "unreadable.txt").write_text("alpha\n")
    (root / "unreadable.txt").chmod(0)
    files = {
        "fifo": root / "fifo",
        "/dev/zero": Path("/dev/zero"),
        "/dev/urandom": Path("/dev/urandom"),
        "directory": root / "folder",
        "300-character name": root / ("n" * 300 + ".txt"),
        "symlink loop": root / "loop",
        "huge": root / "huge.txt",
        "unreadable": root / "unreadable.txt",
    }
    if os.geteuid() == 0:
        del files["unreadable"]  # root reads it anyway
    return files


def roles(run: Path, names_file: Path, path) -> dict[str, list]:
    return {
        "names file": ["train", "-c", "tiny", "--data", path, "-o", run.parent / "new", "--dry-run"],
        "validation file": ["train", "-c", "tiny", "--data", names_file, "--set", f"data.val_path={path}", "--dry-run",
                            "-o", run.parent / "new"],
        "config": ["train", "-c", path, "--dry-run", "-o", run.parent / "new"],
        "exclude": ["sample", run, "-n", "2", "--exclude", path],
        "score --file": ["score", run, "--file", path],
        "evaluate --data": ["evaluate", run, "--data", path],
        "checkpoint": ["sample", path, "-n", "2"],
        "resume": ["train", "--resume", path, "--dry-run"],
    }  # fmt: skip


def test_files_that_are_not_regular_or_too_large(trained_run, names_file, odd_files):
    for kind, path in odd_files.items():
        for role, args in roles(trained_run, names_file, path).items():
            result = run_case(*args)
            assert result.exit_code in (1, 2), (kind, role, result.output)


def test_a_nul_in_a_file_name_is_a_sentence(tmp_path):
    # (a command line cannot hold a NUL: this is for the Python API)
    with pytest.raises(DinogenError, match="cannot read names file"):
        read_names(str(tmp_path / "a") + "\0b")


def test_a_config_too_large_or_a_yaml_bomb_is_refused(tmp_path, names_file):
    cases = {
        "50 MB list": "- 1\n" * (50 * 2**20 // 4),
        "list under the size cap": "[" + "1," * (CONFIG_FILE_BYTES // 2 - 10) + "1]",
        "nested 900 deep": "[" * 900 + "]" * 900,
        "nested mapping": "".join(f"{'  ' * i}k{i}:\n" for i in range(200)),
        "billion laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
        "top-level list": "[1, 2]",
        "top-level string": "hello",
        "top-level integer": "42",
        "huge key": "train:\n  " + "k" * 500_000 + ": 1\n",
        "huge value": "model:\n  cell: " + "x" * 500_000 + "\n",
        "huge integer": "train:\n  seed: " + "9" * 5000 + "\n",
        "not UTF-8": "train:\n  device: \xff\n",
    }
    for what, text in cases.items():
        path = tmp_path / "config.yaml"
        path.write_bytes(text.encode("latin-1"))
        result = run_case("train", "-c", path, "--data", names_file, "-o", tmp_path / "run", "--dry-run")
        assert result.exit_code == 2, (what, result.stderr[:300])


yaml_tokens = st.sampled_from(["[", "]", "{", "}", ":", ",", "- ", "\n", "  ", "&a ", "*a", "!!str ", "? ", "'",
                               '"', "train", "model", "lr", "1e-3", "0.1", ".inf", "null", "#", "|", ">"])  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(yaml_tokens | st.text(max_size=4), max_size=40).map("".join))
def test_any_yaml_text_gives_a_config_or_a_config_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with time_limit():
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as err:
            assert str(err) and len(str(err)) < 2 * SHOWN_CHARS + 400


def test_a_million_character_line_is_refused_not_a_traceback(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("alpha\nbeta\n" + "x" * 1_000_000 + "\n")
    result = run_case("train", "-c", "tiny", "--data", path, "--set", "data.max_length=null", "--dry-run",
                      "-o", tmp_path / "run")  # fmt: skip
    assert result.exit_code == 1 and "holds a name of 1,000,000 characters" in result.stderr
    assert run_case("train", "-c", "tiny", "--data", path, "--dry-run", "-o", tmp_path / "run").exit_code == 0


def test_messages_never_echo_a_huge_input(trained_run, names_file, tmp_path):
    huge = "z" * 100_000
    for args in (["--set", f"train.{huge}=1"], ["--set", f"model.cell={huge}"], ["--set", huge],
                 ["--set", f"data.encoding={huge}"], ["-c", huge]):  # fmt: skip
        result = dry_run(names_file, tmp_path, *args)
        assert result.exit_code in (1, 2) and len(result.stderr) < 600, result.stderr[:300]
    for prefix in (huge, "".join(map(chr, range(0x4E00, 0x4E00 + 50_000)))):  # known, then unseen characters
        result = run_case("sample", trained_run, "--prefix", prefix)
        assert result.exit_code == 2 and len(result.stderr) < 600


# ------------------------------------------------------------------------- class 8: text that is not what it seems

INVISIBLE = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u200b", "\ufeff", "\u202e", "\ue000",
             "\U000e0001", "\u0378", "\x0b", "\x0c", "\x1c"]  # fmt: skip


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_holding_an_invisible_character_refuses_the_file(tmp_path, char):
    path = tmp_path / "names.txt"
    path.write_text("alpha\nbeta\nga" + char + "mma\n", encoding="utf-8")
    with pytest.raises(DinogenError, match=f"line 3 holds U\\+{ord(char):04X}"):
        read_names(path)


def test_what_looks_invisible_but_is_a_name_is_kept(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\ufeffalpha\r\nbe\u2003ta\r\nga\u00a0mma\nمی\u200cخواهم\n", encoding="utf-8")
    assert read_names(path) == ["alpha", "be ta", "ga mma", "می\u200cخواهم"]  # a tab would make a labelled file


def test_windows_1252_read_as_latin_1_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "names.txt"
    path.write_bytes("alpha\n\u201cbeta\u201d\n".encode("cp1252"))
    with pytest.raises(DinogenError, match="line 2 holds U\\+0093 .*set data.encoding=cp1252"):
        read_names(path, encoding="latin-1")
    assert read_names(path, encoding="cp1252") == ["alpha", "\u201cbeta\u201d"]


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200), encoding=st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16"]))
def test_any_bytes_in_any_encoding_read_into_printable_names_or_an_error(tmp_path_factory, raw, encoding):
    path = tmp_path_factory.mktemp("bytes") / "names.txt"
    path.write_bytes(raw)
    try:
        names = read_names(path, encoding=encoding)
    except DinogenError as err:
        assert str(err)
        return
    assert all(name.isprintable() or "\u200c" in name or "\u200d" in name for name in names)


def test_case_folded_duplicates_are_counted_in_a_warning(tmp_path, caplog):
    path = tmp_path / "names.txt"
    path.write_text("Raptor\nraptor\nRAPTOR\nraptor\nalpha\n")
    assert read_names(path) == ["raptor", "alpha"]
    assert "merged 2 names" in caplog.text and "differ only in case" in caplog.text
    assert read_names(path, lowercase=False) == ["Raptor", "raptor", "RAPTOR", "alpha"]


def test_an_nfd_name_scores_as_its_nfc_form(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join([*NAMES, "héros", "crème"]) + "\n")
    run = tmp_path / "run"
    assert invoke("train", "-c", "tiny", "--data", path, "-o", run, "-q", "--set", "train.max_steps=2").exit_code == 0
    nfc, nfd = "crème", unicodedata.normalize("NFD", "crème")
    assert nfc != nfd
    result = run_case("score", run, nfc, nfd, "--format", "csv")
    lines = result.stdout.splitlines()[1:]
    assert lines[0] == lines[1] and "inf" not in lines[0]


def test_a_quoted_number_is_a_string_and_an_unquoted_one_a_number(names_file, tmp_path):
    for quoted in ["'0.1'", '"0.1"', "'1e-3'"]:
        result = dry_run(names_file, tmp_path, "--set", f"train.lr={quoted}")
        assert result.exit_code == 2 and "train.lr must be a number, got a string" in result.stderr
    for unquoted in ["0.1", "1e-3", "5E-4", "1"]:
        assert dry_run(names_file, tmp_path, "--set", f"train.lr={unquoted}").exit_code == 0
    config = yaml.safe_dump({"train": {"lr": "0.1"}})
    assert "'0.1'" in config  # a string in YAML, so the config file path refuses it the same way
    path = tmp_path / "quoted.yaml"
    path.write_text(config)
    with pytest.raises(ConfigError, match="train.lr must be a number, got a string"):
        load_config(path)
