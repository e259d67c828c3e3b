"""`dinogen export`: the ONNX step against torch, the torch-free sampling loop, the web page in a real browser."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import NAMES, invoke

from dinogen.cells import ReferenceGRU
from dinogen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dinogen.config import Config
from dinogen.data import BOUNDARY, Vocab
from dinogen.errors import DinogenError
from dinogen.export import export_model
from dinogen.model import build_model
from dinogen.onnx_export import OneStep, check_parity, export_onnx
from dinogen.page_check import INSTALL, check_page, find_browser
from dinogen.sample import Generator
from dinogen.web_export import export_html

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "onnx_sample.py"
SHAPES = [(cell, layers, ensemble) for cell in ("rnn", "gru", "lstm") for layers, ensemble in ((1, 1), (2, 1), (1, 2))]


def shape_id(shape: tuple[str, int, int]) -> str:
    return "{}-{}layer-x{}".format(*shape)


def random_checkpoint(cell: str, num_layers: int = 1, ensemble: int = 1, seed: int = 0) -> Checkpoint:
    """A checkpoint of the test names with random weights: large enough that every gate matters, small enough
    that a vanilla RNN is not chaotic (there float32 rounding alone would grow from step to step)."""
    model = {"cell": cell, "num_layers": num_layers, "ensemble": ensemble, "embedding_dim": 8, "hidden_size": 16,
             "dropout": 0.0}  # fmt: skip
    config = Config.from_dict({"data": {"path": "names.txt"}, "model": model})
    vocab = Vocab.from_names(NAMES)
    network = build_model(len(vocab), config.model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return Checkpoint(config, vocab, network.state_dict(), NAMES[:25], NAMES[25:])


def max_difference(session, checkpoint: Checkpoint, batch: int, steps: int = 8, seed: int = 0) -> float:
    """The largest difference of log-probabilities and states, onnxruntime against torch, along random prefixes."""
    model = checkpoint.build_model("cpu")
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.full((batch,), BOUNDARY)
    state_inputs = [item.name for item in session.get_inputs()[1:]]
    state = [np.zeros((item.shape[0], batch, item.shape[2]), np.float32) for item in session.get_inputs()[1:]]
    torch_state, worst = None, 0.0
    for _ in range(steps):
        log_probs, *state = session.run(None, {"tokens": tokens.numpy()} | dict(zip(state_inputs, state, strict=True)))
        with torch.no_grad():
            logits, torch_state = model.step(tokens, torch_state)
        parts = torch_state if isinstance(torch_state, tuple) else (torch_state,)
        for got, want in zip([log_probs, *state], [logits.log_softmax(-1), *parts], strict=True):
            assert got.shape == tuple(want.shape)
            worst = max(worst, float(np.abs(got - want.numpy()).max()))
        tokens = torch.randint(1, len(checkpoint.vocab), (batch,), generator=generator)  # a random next character
    return worst


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each shape of model exported once: shape -> (checkpoint, onnxruntime session, path)."""
    folder = tmp_path_factory.mktemp("onnx")
    models = {}
    for shape in SHAPES:
        checkpoint = random_checkpoint(*shape)
        path = folder / ("-".join(map(str, shape)) + ".onnx")
        export_onnx(checkpoint, path)
        models[shape] = checkpoint, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path
    return models


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_onnxruntime_gives_torchs_log_probabilities_along_random_prefixes(exported, shape):
    checkpoint, session, _ = exported[shape]
    for batch in (1, 3, 64):
        assert max_difference(session, checkpoint, batch, seed=batch) <= 1e-4


def test_the_batch_size_stays_free_from_one_to_4096(exported):
    checkpoint, session, _ = exported["gru", 2, 1]
    for batch in (1, 4096):
        assert max_difference(session, checkpoint, batch, steps=3) <= 1e-4


def test_the_graph_carries_vocabulary_boundary_case_rule_and_config_and_so_does_the_sidecar(exported):
    checkpoint, _, path = exported["lstm", 1, 2]
    metadata = {entry.key: json.loads(entry.value) for entry in onnx.load(path).metadata_props}
    assert metadata["vocab"] == checkpoint.vocab.chars
    assert metadata["boundary"] == BOUNDARY == 0
    assert metadata["lowercase"] is True
    assert metadata["config"] == checkpoint.config.to_dict()
    assert metadata["state"] == ["hidden", "cell"] and metadata["state_shape"] == [2, "batch", 16]
    assert json.loads(path.with_suffix(".json").read_text(encoding="utf-8")) == metadata


def test_the_graph_has_the_documented_inputs_and_outputs(exported):
    _, session, _ = exported["lstm", 2, 1]
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        ("tokens", "tensor(int64)", ["batch"]),
        ("hidden", "tensor(float)", [2, "batch", 16]),
        ("cell", "tensor(float)", [2, "batch", 16]),
    ]
    assert [o.name for o in session.get_outputs()] == ["log_probs", "next_hidden", "next_cell"]


def test_an_ensemble_step_gives_the_log_of_its_members_mean_probability(exported):
    checkpoint, session, _ = exported["gru", 1, 2]
    ensemble = checkpoint.build_model("cpu")
    tokens, state = np.array([0, 3, 7]), np.random.default_rng(0).normal(size=(2, 3, 16)).astype(np.float32)
    log_probs, _ = session.run(None, {"tokens": tokens, "hidden": state})
    with torch.no_grad():
        members = [m.step(torch.from_numpy(tokens), torch.from_numpy(part[None]))
                   for m, part in zip(ensemble.members, state, strict=True)]  # fmt: skip
    mean = torch.stack([logits.softmax(-1) for logits, _ in members]).mean(0)
    assert np.abs(np.exp(log_probs) - mean.numpy()).max() <= 1e-6


def test_a_graph_that_differs_from_the_model_is_refused(exported):
    _, _, path = exported["gru", 1, 1]
    other = OneStep(random_checkpoint("gru", seed=1).build_model("cpu")).eval()
    with pytest.raises(DinogenError, match="differs from the model by .* nothing was written"):
        check_parity(path.read_bytes(), other, len(Vocab.from_names(NAMES)))


def test_the_command_writes_the_graph_and_its_description_and_nothing_on_stdout(trained_run, tmp_path):
    result = invoke("export", trained_run, "-o", tmp_path / "model.onnx")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"wrote {tmp_path / 'model.onnx'}\nwrote {tmp_path / 'model.json'}\n"
    description = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert description["vocab"] == load_checkpoint(trained_run).vocab.chars


def test_without_the_export_extra_the_command_says_how_to_install_it(trained_run, tmp_path, monkeypatch):
    for module in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import onnx` fail, as when it is not installed
    result = invoke("export", trained_run, "-o", tmp_path / "model.onnx")
    assert result.exit_code == 1
    assert result.output == "Error: exporting to ONNX needs onnx and onnxruntime: pip install 'dinogen[export]'\n"
    assert not (tmp_path / "model.onnx").exists()


def test_a_missing_checkpoint_is_one_sentence(tmp_path):
    result = invoke("export", tmp_path / "nothing.pt", "-o", tmp_path / "model.onnx")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1 and "nothing.pt" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_is_a_usage_error(trained_run, tmp_path):
    result = invoke("export", trained_run, "--format", "tflite", "-o", tmp_path / "model")
    assert result.exit_code == 2
    assert "'tflite' is not one of 'onnx', 'html'" in result.output


@pytest.fixture(scope="module")
def trained_onnx(trained_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("trained-onnx") / "model.onnx"
    assert invoke("export", trained_run, "-o", path).exit_code == 0
    return path


def run_without_torch(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    """Run Python where `import torch` raises: a package named torch, first on the path, that refuses."""
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_the_example_loop_samples_without_torch_and_scores_as_dinogen_does(trained_run, trained_onnx, tmp_path):
    assert "torch is blocked here" in run_without_torch(tmp_path, "-c", "import torch").stderr
    options = ["-n", 40, "--temperature", 0.9, "--top-k", 8, "--prefix", " S", "--min-length", 5, "--max-length", 12]
    result = run_without_torch(tmp_path, EXAMPLE, trained_onnx, *options, "--seed", 3)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    names, log_probs = [name for _, name in lines], [float(value) for value, _ in lines]
    assert len(names) == 40 and all(name.startswith("s") and 5 <= len(name) <= 12 for name in names)
    scores = Generator.from_checkpoint(trained_run, device="cpu").score(names)
    assert max(abs(scored.log_prob - value) for scored, value in zip(scores, log_probs, strict=True)) <= 1e-4
    again = run_without_torch(tmp_path, EXAMPLE, trained_onnx, *options, "--seed", 3)
    assert again.stdout == result.stdout  # the same seed, the same names


def test_the_example_loop_at_temperature_zero_writes_the_greedy_name(trained_run, trained_onnx, tmp_path):
    result = run_without_torch(tmp_path, EXAMPLE, trained_onnx, "-n", 3, "-t", 0)
    assert result.returncode == 0, result.stderr
    greedy = Generator.from_checkpoint(trained_run, device="cpu").sample(1, temperature=0)
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == greedy * 3


def test_the_example_loop_runs_an_lstm_ensemble_as_well(exported, tmp_path):
    checkpoint, _, path = exported["lstm", 1, 2]
    result = run_without_torch(tmp_path, EXAMPLE, path, "-n", 20, "--seed", 1, "--max-length", 30)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 20
    scores = Generator.from_loaded(checkpoint, torch.device("cpu")).score([name for _, name in lines])
    assert max(abs(scored.log_prob - float(value)) for scored, (value, _) in zip(scores, lines, strict=True)) <= 1e-4


@pytest.fixture(scope="module")
def browser():
    """Chromium's path; a failure in CI when it is missing, a skip that says why outside CI."""
    path = find_browser()
    if path is None:
        message = f"the web page is tested in headless Chromium, which is not installed: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (CI is unset, so this is a skip, not a failure)")
    return path


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_the_page_gives_torchs_next_character_probabilities(browser, shape, tmp_path):
    checkpoint = random_checkpoint(*shape)
    page = export_html(checkpoint, tmp_path / "names.html")
    prefixes = ["", "t", "tyr", "saurus"]
    report = check_page(page, {"prefixes": prefixes})
    model = checkpoint.build_model("cpu")
    for prefix in prefixes:
        tokens, state = [BOUNDARY, *checkpoint.vocab.encode(prefix)], None
        with torch.no_grad():
            for token in tokens:
                logits, state = model.step(torch.tensor([token]), state)
        expected = logits.softmax(-1)[0].double()
        assert (torch.tensor(report["probabilities"][prefix], dtype=torch.float64) - expected).abs().max() <= 1e-5


def test_a_click_on_generate_writes_new_names_that_dinogen_scores_alike(browser, trained_run, tmp_path):
    page = tmp_path / "names.html"
    assert invoke("export", trained_run, "--format", "html", "-o", page).exit_code == 0
    settings = {"count": 25, "seed": 5, "temperature": 0.9, "prefix": "Ca", "min": 4, "max": 12, "novel": 1}
    report = check_page(page, {"settings": settings})
    names = [entry["name"] for entry in report["names"]]
    generator = Generator.from_checkpoint(trained_run, device="cpu")
    assert len(names) == len(set(names)) == 25
    assert all(name.startswith("ca") and 4 <= len(name) <= 12 for name in names)
    assert not set(names) & generator.known_names  # new names only
    scores = generator.score(names)
    assert max(abs(s.log_prob - entry["log_prob"]) for s, entry in zip(scores, report["names"], strict=True)) <= 1e-4
    assert report["first_names_ms"] > 0


def test_the_page_is_one_file_that_fetches_nothing(trained_run, tmp_path):
    page = tmp_path / "names.html"
    assert invoke("export", trained_run, "-o", page).exit_code == 0  # .html: the format follows the suffix
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and '<meta name="viewport"' in text
    assert "://" not in text and "src=" not in text and "<link" not in text  # no address, script or style to fetch
    assert json.loads(text.split('<script type="application/json" id="model">')[1].split("</script>")[0])["known"]


def test_a_page_whose_script_fails_reports_the_error(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><body><script>null.step();</script></body>")
    with pytest.raises(DinogenError, match="wrote no self-check report: Uncaught TypeError: Cannot read prop"):
        check_page(page, {})


def test_a_missing_browser_is_named_with_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(DinogenError, match="no Chromium found .*apt-get install -y chromium"):
        check_page(tmp_path / "names.html", {})


def test_a_page_is_refused_for_reference_cells_whose_equations_were_changed(trained_run, tmp_path, monkeypatch):
    checkpoint = load_checkpoint(trained_run)
    checkpoint.config.model.impl = "reference"
    save_checkpoint(checkpoint, tmp_path / "reference.pt")
    assert export_model(tmp_path / "reference.pt", tmp_path / "same.html")  # unchanged equations: torch's

    def without_reset(self, x, a, layer):  # a learner's edit: the candidate sees all of a^{t-1}
        (x_r, x_z, x_c), (a_r, a_z, a_c) = self.products(x, a, layer)
        gamma_u = 1 - torch.sigmoid(x_z + a_z)
        return gamma_u * torch.tanh(x_c + a_c) + (1 - gamma_u) * a

    monkeypatch.setattr(ReferenceGRU, "cell", without_reset)
    with pytest.raises(DinogenError, match="page computes torch's; export it to ONNX"):
        export_model(tmp_path / "reference.pt", tmp_path / "changed.html")
    assert not (tmp_path / "changed.html").exists()
