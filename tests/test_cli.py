import subprocess
import sys

import pytest
from click.testing import CliRunner

from dinogen import __version__
from dinogen.cli import main


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def test_train_then_sample_end_to_end(trained_run):
    assert {p.name for p in trained_run.iterdir()} == {"config.yaml", "metrics.jsonl", "best.pt", "last.pt"}
    result = invoke("sample", trained_run, "-n", 7, "--temperature", 0.8, "--seed", 0)
    assert result.exit_code == 0, result.output
    names = result.stdout.splitlines()
    assert len(names) == 7 and all(names) and result.stderr == ""
    assert invoke("sample", trained_run, "-n", 7, "-t", 0.8, "--seed", 0).stdout == result.stdout


def test_sample_without_a_checkpoint_says_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
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
        (["-n", "0"], "'-n' / '--num': 0 is not in the range x>=1"),
        (["--temperature", "-1"], "-1.0 is not in the range x>=0"),
        (["--top-p", "0"], "0.0 is not in the range 0<x<=1"),
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
