import sys

import pytest
from helpers import invoke

from dinogen.errors import DinogenError
from dinogen.plot import plot_runs, read_metrics


def test_plot_writes_a_png_of_several_runs(trained_run, tmp_path):
    output = tmp_path / "curves.png"
    result = invoke("plot", trained_run, trained_run, "-o", output)
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert output.stat().st_size > 10_000


def test_read_metrics(trained_run, tmp_path):
    rows = read_metrics(trained_run)
    assert [row["step"] for row in rows] == list(range(10, 201, 10))
    with pytest.raises(DinogenError, match="has no metrics.jsonl"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{oops\n')
    with pytest.raises(DinogenError, match="damaged at line 2"):
        read_metrics(tmp_path)


def test_without_matplotlib_the_command_says_how_to_install_it(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(DinogenError, match=r"pip install 'dinogen\[plot\]'"):
        plot_runs([trained_run], tmp_path / "x.png")
    result = invoke("plot", trained_run, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and "pip install 'dinogen[plot]'" in result.stderr
    assert not (tmp_path / "x.png").exists()
