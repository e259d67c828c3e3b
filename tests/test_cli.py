import json
import subprocess
import sys

import pytest
import yaml
from helpers import invoke

from dinogen import __version__


def test_train_then_sample_end_to_end(trained_run):
    assert {p.name for p in trained_run.iterdir()} == {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", ".lock"}
    result = invoke("sample", trained_run, "-n", 7, "--temperature", 0.8, "--seed", 0)
    assert result.exit_code == 0, result.output
    names = result.stdout.splitlines()
    assert len(names) == 7 and all(names) and result.stderr == ""
    assert invoke("sample", trained_run, "-n", 7, "-t", 0.8, "--seed", 0).stdout == result.stdout


def test_a_command_without_a_checkpoint_says_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("dinogen.bundled.BUNDLED_MODEL", tmp_path / "absent.pt")  # a copy without the bundled model
    result = invoke("sample")
    assert result.exit_code == 1
    assert "run `dinogen train` first" in result.stderr and "Traceback" not in result.stderr


def test_unknown_key_and_bad_value_are_usage_errors(names_file, tmp_path):
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "a", "--set", "train.lrr=0.1")
    assert result.exit_code == 2 and "unknown config key 'train.lrr'" in result.stderr
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "b", "--set", "model.dropout=2")
    assert result.exit_code == 2 and "model.dropout must be in [0, 1)" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_existing_run_is_not_overwritten(trained_run, names_file):
    before = (trained_run / "best.pt").read_bytes()
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", trained_run)
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert (trained_run / "best.pt").read_bytes() == before


def test_missing_data_file_is_one_sentence(tmp_path):
    result = invoke("train", "-c", "tiny", "--data", tmp_path / "absent.txt", "-o", tmp_path / "run")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: names file {tmp_path / 'absent.txt'} does not exist"


def test_unavailable_device_is_a_runtime_error(names_file, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "run", "--device", "cuda")
    assert result.exit_code == 1 and "CUDA is not available" in result.stderr


def test_output_file_and_formats(trained_run, tmp_path):
    out = tmp_path / "names.csv"
    result = invoke("sample", trained_run, "-n", 5, "--format", "csv", "-o", out, "--seed", 0)
    assert result.exit_code == 0 and result.stdout == ""
    lines = out.read_text().splitlines()
    assert lines[0] == "name,log_prob,nll_per_char,length" and len(lines) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "'-n' / '--num': 0 is not in the range 1<=x<=1000000000"),
        (["--temperature", "-1"], "-1.0 is not in the range 0<=x<=100"),
        (["--temperature", "inf"], "inf is not in the range 0<=x<=100"),
        (["--top-p", "0"], "0.0 is not in the range 0<x<=1"),
        (["--min-length", "0"], "0 is not in the range 1<=x<=1000"),
        (["--shard", "1/4"], "shard needs a seed"),
        (["--shard", "4/4", "--seed", "0"], "'4/4' needs 0 <= K < M"),
        (["--shard", "half", "--seed", "0"], "'half' is not of the form K/M"),
        (["--most-likely", "-t", "0.5"], "ranks names by the model's own probability; drop --temperature"),
    ],
)
def test_bad_sample_options_exit_2(trained_run, args, message):
    result = invoke("sample", trained_run, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_help_and_version_do_not_import_torch():
    code = "import sys; from dinogen.cli import main; main(['--help'], standalone_mode=False)"
    code += "; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
    assert __version__ in invoke("--version").stdout


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "dinogen", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_print_config_applies_file_overrides_and_options(names_file):
    result = invoke("train", "-c", "tiny", "--set", "train.lr=0.5", "--seed", 7, "--data", names_file, "--print-config")
    assert result.exit_code == 0
    config = yaml.safe_load(result.stdout)
    assert config["train"]["lr"] == 0.5 and config["train"]["seed"] == 7
    assert config["data"]["path"] == str(names_file) and config["model"]["hidden_size"] == 16


def test_dry_run_reports_and_writes_nothing(names_file, tmp_path):
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0
    assert (
        "would train gru (1,823 parameters) on 27 names" in result.stderr
        and "1 batch of 32 per epoch, 20 steps" in result.stderr
    )
    assert not (tmp_path / "run").exists()


def test_progress_lines_when_stderr_is_not_a_terminal(names_file, tmp_path):
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "run")
    lines = result.stderr.splitlines()
    assert result.exit_code == 0 and result.stdout == ""
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["10/20", "20/20"]
    assert "val" in lines[1] and "lr" in lines[1] and "char/s" in lines[1]
    assert lines[-1].startswith("stopped: budget spent; best validation loss")
    assert invoke("train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "q", "-q").stderr == ""


def test_verbose_logs_debug_lines(names_file, tmp_path):
    result = invoke("-v", "train", "-c", "tiny", "--data", names_file, "-o", tmp_path / "run", "-q")
    assert "DEBUG: vocabulary of" in result.stderr


def test_resume_on_the_command_line(names_file, tmp_path):
    run_dir = tmp_path / "run"
    assert invoke("train", "-c", "tiny", "--data", names_file, "-o", run_dir, "-q").exit_code == 0
    result = invoke("train", "--resume", run_dir, "--set", "train.max_steps=30")
    assert result.exit_code == 0, result.output
    assert "resuming gru" in result.stderr
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30]
    result = invoke("train", "--resume", run_dir, "-c", "lstm")
    assert result.exit_code == 2 and "drop -c/--out/--overwrite" in result.stderr


def test_exclude_file_and_prefix_on_the_command_line(trained_run, tmp_path):
    greedy = invoke("sample", trained_run, "-n", 1, "-t", 0).stdout.strip()
    excluded = tmp_path / "exclude.txt"
    excluded.write_text(greedy.upper() + "\n")  # folded like the training names
    result = invoke("sample", trained_run, "-n", 50, "--exclude", excluded, "--prefix", "a", "--seed", 0)
    names = result.stdout.splitlines()
    assert result.exit_code == 0 and len(names) == 50
    assert greedy not in names and all(name.startswith("a") for name in names)


def test_output_file_is_replaced_only_when_complete(trained_run, tmp_path):
    out = tmp_path / "names.txt"
    out.write_text("precious\n")
    result = invoke("sample", trained_run, "-n", 5, "--prefix", "t-", "-o", out)
    assert result.exit_code == 2 and out.read_text() == "precious\n"
    result = invoke("sample", trained_run, "-n", 5, "-t", 0, "--unique", "-o", out)
    assert result.exit_code == 3 and "found only 1 of 5" in result.stderr
    assert out.read_text().count("\n") == 1  # what was found is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.txt"]


def test_atomic_file_keeps_the_old_one_when_interrupted(tmp_path):
    from dinogen.output import output_file

    out = tmp_path / "names.txt"
    out.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), output_file(out) as file:
        file.write("half")
        raise KeyboardInterrupt
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["names.txt"]


def test_dry_run_checks_the_run_directory(trained_run, names_file):
    result = invoke("train", "-c", "tiny", "--data", names_file, "-o", trained_run, "--dry-run")
    assert result.exit_code == 1 and "already holds a run" in result.stderr


@pytest.mark.parametrize("option", [["sample", "--exclude"], ["score", "--file"], ["evaluate", "--data"]])
def test_missing_names_files_are_runtime_errors(trained_run, tmp_path, option):
    command, flag = option
    result = invoke(command, trained_run, flag, tmp_path / "absent.txt")
    assert result.exit_code == 1 and "does not exist" in result.stderr and "Usage" not in result.stderr


def test_plot_to_an_unknown_format_is_one_sentence(trained_run, tmp_path):
    result = invoke("plot", trained_run, "-o", tmp_path / "curves.xyz")
    assert result.exit_code == 1 and "unknown image format" in result.stderr and "Traceback" not in result.output


def test_friendlier_checkpoint_and_resume_messages(trained_run, tmp_path):
    parent = trained_run.parent
    result = invoke("sample", parent)
    assert result.exit_code == 1 and f"{parent} is not a run directory" in result.stderr and "tiny" in result.stderr
    info = json.loads(invoke("info", trained_run, "--format", "json").stdout)
    assert info["checkpoint"] == str(trained_run / "best.pt")
    result = invoke("train", "--resume", trained_run)
    assert result.exit_code == 0 and "nothing to do" in result.stderr


def test_sample_shards_and_most_likely_on_the_command_line(trained_run):
    whole = invoke("sample", trained_run, "-n", 9, "--seed", 4).stdout.splitlines()
    parts = [invoke("sample", trained_run, "-n", 9, "--seed", 4, "--shard", f"{k}/2").stdout.split() for k in (0, 1)]
    assert parts[0] == whole[0::2] and parts[1] == whole[1::2]
    result = invoke("sample", trained_run, "--most-likely", "-n", 5, "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(rows) == 5
    assert [r["log_prob"] for r in rows] == sorted((r["log_prob"] for r in rows), reverse=True)


def test_json_outputs_are_strict(trained_run):
    def strict(text):
        return json.loads(text, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON"))

    result = invoke("score", trained_run, "t-rex!", "rex", "--format", "jsonl")
    impossible, possible = (strict(line) for line in result.stdout.splitlines())
    assert impossible["log_prob"] is None and impossible["nll_per_char"] is None and possible["log_prob"] < 0
    assert strict(invoke("evaluate", trained_run, "--samples", 20, "--format", "json").stdout)["loss"] > 0
    assert strict(invoke("info", trained_run, "--format", "json").stdout)["step"] > 0


def test_score_arguments_are_normalised(trained_run):
    result = invoke("score", trained_run, " Tyrannosaurus ", "tyrannosaurus")
    first, second = result.stdout.splitlines()
    assert result.exit_code == 0 and first == second and first.endswith("\ttyrannosaurus")


def test_a_dry_run_of_a_resume_writes_nothing(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"step": 999999}\n')
    before = (run / "metrics.jsonl").read_text()
    result = invoke("train", "--resume", run, "--set", "train.max_steps=500", "--dry-run")
    assert result.exit_code == 0 and "would train" in result.stderr
    assert (run / "metrics.jsonl").read_text() == before  # only a real resume cuts it back to last.pt


def test_a_mixed_case_list_keeps_its_case_end_to_end(places_file, tmp_path):
    run_dir = tmp_path / "places"
    budget = ["--set", "train.max_steps=300", "--set", "model.hidden_size=32", "-q"]
    assert invoke("train", places_file, "-c", "tiny", "-o", run_dir, *budget).exit_code == 0
    names = invoke("sample", run_dir, "-n", 200, "--seed", 0).stdout.splitlines()
    assert len(names) == 200 and sum(name[:1].isupper() for name in names) > 150  # the list's names are capitalised
    prefixed = invoke("sample", run_dir, "-n", 5, "--prefix", "Gl", "--seed", 0)
    assert prefixed.exit_code == 0 and all(name.startswith("Gl") for name in prefixed.stdout.splitlines())
    cased, lowered = invoke("score", run_dir, "Glen Ivy", "glen ivy").stdout.splitlines()
    assert cased.endswith("\tGlen Ivy") and lowered.endswith("\tglen ivy")  # two names to a model that keeps case
    assert float(cased.split("\t")[1]) > float(lowered.split("\t")[1])  # 'G' begins names here, 'g' does not
    folded_dir = tmp_path / "folded"
    assert (
        invoke("train", places_file, "-c", "tiny", "-o", folded_dir, *budget, "--set", "data.lowercase=true").exit_code
        == 0
    )
    folded = invoke("sample", folded_dir, "-n", 200, "--seed", 0).stdout.splitlines()
    assert folded and all(name == name.lower() for name in folded)


def test_a_list_without_capitals_folds_what_it_is_given(trained_run):
    shouted = invoke("sample", trained_run, "-n", 5, "--prefix", "TYR", "--seed", 0)
    assert shouted.exit_code == 0 and all(name.startswith("tyr") for name in shouted.stdout.splitlines())
    assert invoke("score", trained_run, "Tyrannosaurus").stdout.endswith("\ttyrannosaurus\n")


def test_the_names_file_is_an_argument_or_dash_d(names_file, tmp_path):
    assert invoke("train", names_file, "-c", "tiny", "-o", tmp_path / "a", "-q").exit_code == 0
    assert invoke("train", "-d", names_file, "-c", "tiny", "-o", tmp_path / "b", "-q").exit_code == 0
    for run in ("a", "b"):
        assert f"data_path        {names_file}" in invoke("info", tmp_path / run).stdout
    both = invoke("train", names_file, "-d", names_file, "-c", "tiny", "-o", tmp_path / "c")
    assert both.exit_code == 2 and "give the names file once" in both.stderr
    usage = invoke("train", "--help").stdout
    assert "train [OPTIONS] [NAMES_FILE]" in usage and "-d, --data" in usage
    assert usage.index("dinogen train my_names.txt") < usage.index("dinogen train -c lstm")  # the first example


def test_sample_help_says_what_order_a_shard_writes():
    shown = " ".join(invoke("sample", "--help").stdout.split())
    assert "its names K, K+M, K+2M, ... in that order" in shown and "paste -d" in shown
