"""The README cannot drift from the tool: its commands run, its tables match the code."""

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from helpers import NAMES, invoke

from dinogen.cli import main
from dinogen.config import Config

ROOT = Path(__file__).resolve().parent.parent
# The README, then the pages of docs/: read as one text, their commands run in that order, as one session.
README = "\n".join(page.read_text(encoding="utf-8") for page in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])

# What the README's training commands get appended here, so that each takes a second, not a minute.
FAST_TRAINING = ["--set", "train.epochs=null", "--set", "train.max_steps=6", "--set", "train.eval_every=3",
                 "--set", "train.max_time=null"]  # fmt: skip
SMALL_MODEL = ["--set", "model.hidden_size=16", "--set", "model.embedding_dim=8"]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def shell_commands() -> list[str]:
    """Each command of the README's bash blocks; `a && b` counts as two."""
    lines = [line.strip() for block in blocks("bash") for line in block.splitlines()]
    return [part.strip() for line in lines if line for part in line.split("&&")]


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory):
    """A working directory with the files the README's examples name."""
    root = tmp_path_factory.mktemp("docs")
    for name in ("my_names.txt", "candidates.txt", "test_names.txt"):
        (root / name).write_text("\n".join(NAMES) + "\n")
    return root


def test_readme_commands_run(docs_dir, monkeypatch):
    """Every command in order, in one directory, as a new user would type them (no --overwrite added)."""
    monkeypatch.chdir(docs_dir)
    ran = 0
    for command in shell_commands():
        args = shlex.split(command)
        if args[0] == "python" and args[1].startswith("examples/"):
            result = subprocess.run([sys.executable, str(ROOT / args[1]), *args[2:]], capture_output=True, text=True)
            assert result.returncode == 0, (command, result.stderr)
            ran += 1
            continue
        if args[0] != "dinogen":
            continue  # pip, ruff, pytest and the benchmarks are what CI itself runs
        if "cuda" in args and not torch.cuda.is_available():
            continue  # the GPU examples run where there is one
        args = ["1000" if arg.isdigit() and int(arg) > 1000 else arg for arg in args[1:]]  # -n 100000 is for real use
        if args[0] == "train" and "--print-config" not in args:
            args += FAST_TRAINING if "--resume" in args else FAST_TRAINING + SMALL_MODEL
        result = invoke(*args)
        assert result.exit_code == 0, (command, result.output)
        ran += 1
    assert ran >= 20


def test_readme_python_blocks_run(docs_dir, monkeypatch):
    monkeypatch.chdir(docs_dir)
    assert invoke("train", *FAST_TRAINING, *SMALL_MODEL).exit_code == 0  # the checkpoint the examples load
    for block in blocks("python"):
        code = block.replace("1_000_000", "1_000")  # a million names is the point, not the test
        exec(compile(code, "README.md", "exec"), {"print": lambda *a, **k: None})


def test_config_table_lists_every_key_with_its_default():
    table = README.split("<!-- config:start -->")[1].split("<!-- config:end -->")[0]
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| `([^`]*)` \|", table, flags=re.MULTILINE))
    expected = {}
    for section in dataclasses.fields(Config):
        for field in dataclasses.fields(section.default_factory()):
            value = getattr(section.default_factory(), field.name)
            expected[f"{section.name}.{field.name}"] = _yaml_scalar(value)
    assert rows == expected


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_option_is_documented():
    for name, command in main.commands.items():
        assert f"### `dinogen {name}`" in README, name
        for param in command.params:
            if isinstance(param, click.Option):
                longest = max(param.opts, key=len)
                assert f"`{longest}" in README or f", {longest}" in README, f"{name} {longest}"


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(c for c in blocks("bash")[1].splitlines() if c.strip())
    assert test_command.strip() in ci
    assert "torch==2.13.0" in ci


def test_shell_completion_works():
    import os

    env = {**os.environ, "_DINOGEN_COMPLETE": "bash_source"}
    result = subprocess.run([sys.executable, "-m", "dinogen"], env=env, capture_output=True, text=True)
    assert "_dinogen_completion" in result.stdout
