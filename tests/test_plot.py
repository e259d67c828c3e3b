import sys

import pytest
from helpers import invoke

from dinogen.config import load_config
from dinogen.errors import DinogenError
from dinogen.plot import draw_runs, plot_runs, read_metrics, read_runs


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


def test_the_figure_has_a_gradient_norm_panel_with_the_clip_threshold(trained_run, tmp_path):
    runs = read_runs([trained_run])
    assert runs[0].grad_clip == load_config(trained_run / "config.yaml").train.grad_clip == 1.0
    figure = draw_runs(runs)
    loss_axes, grad_axes, lr_axes = figure.axes
    assert grad_axes.get_yscale() == "log" and grad_axes.get_ylabel() == "gradient norm"
    norm, clip = grad_axes.get_lines()
    assert list(norm.get_ydata()) == [row["grad_norm"] for row in read_metrics(trained_run)]
    assert clip.get_label() == "clip threshold" and clip.get_linestyle() == "--"
    assert list(clip.get_ydata()) == [1.0, 1.0]
    assert lr_axes.get_ylabel() == "learning rate"

    unclipped = tmp_path / "unclipped"  # a run without clipping, or without its config.yaml, has no line
    unclipped.mkdir()
    (unclipped / "metrics.jsonl").write_bytes((trained_run / "metrics.jsonl").read_bytes())
    assert read_runs([unclipped])[0].grad_clip is None
    (unclipped / "config.yaml").write_text("train:\n  grad_clip: null\n")
    assert [line.get_label() for line in draw_runs(read_runs([unclipped])).axes[1].get_lines()] == ["unclipped"]
