"""Shared fixtures: a small names file and one tiny trained run, reused across tests."""

import pytest
from click.testing import CliRunner
from helpers import NAMES, PLACES

from dinogen import cli
from dinogen.cli import main


@pytest.fixture(scope="session")
def places_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("places") / "places.txt"
    path.write_text("\n".join(PLACES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def names_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(names_file, tmp_path_factory):
    """A run directory made by `dinogen train` on the tiny config."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    # 200 steps: enough that the likeliest names end (greedy decoding is a name, not an endless loop)
    args = ["train", "-c", "tiny", "--data", str(names_file), "-o", str(run_dir), "-q", "--set", "train.max_steps=200"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(autouse=True)
def _no_unexpected_errors(request, monkeypatch):
    """Fail a test whose input reaches the CLI's last line of defence: every bad input deserves its own sentence."""
    reached = []

    def record(err):
        reached.append(err)
        return unexpected(err)

    unexpected = cli.unexpected_error
    monkeypatch.setattr(cli, "unexpected_error", record)
    yield
    if reached and not request.node.get_closest_marker("unexpected_ok"):
        pytest.fail(f"the CLI met an unexpected {type(reached[0]).__name__}: {reached[0]}")
