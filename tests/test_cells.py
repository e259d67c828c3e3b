"""The reference cells are torch's fused layers written out: the same numbers, gradients and weights."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import invoke
from torch import nn

from dinogen.cells import REFERENCE_MODULES, ReferenceGRU
from dinogen.checkpoint import load_checkpoint
from dinogen.config import ModelConfig
from dinogen.model import CharRNN

ROOT = Path(__file__).resolve().parent.parent
FUSED = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BATCH, STEPS, INPUT, HIDDEN = 3, 5, 4, 6


def fused_and_reference(cell: str, num_layers: int) -> tuple[nn.Module, nn.Module]:
    """A fused layer stack and a reference one holding the same (random) weights, both in eval mode."""
    torch.manual_seed(num_layers)
    fused = FUSED[cell](INPUT, HIDDEN, num_layers=num_layers, dropout=0.3 if num_layers > 1 else 0.0, batch_first=True)
    reference = REFERENCE_MODULES[cell](INPUT, HIDDEN, num_layers=num_layers, dropout=0.3, batch_first=True)
    reference.load_state_dict(fused.state_dict())  # strict: the same names and shapes, nothing more
    return fused.eval(), reference.eval()


def random_state(cell: str, num_layers: int):
    shape = (num_layers, BATCH, HIDDEN)
    return (torch.randn(shape), torch.randn(shape)) if cell == "lstm" else torch.randn(shape)


def parts(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def run_with_gradients(module: nn.Module, x: torch.Tensor, state, weights: list[torch.Tensor]):
    """Outputs, final state and the gradients of a random weighting of both w.r.t. x, state and parameters."""
    x = x.clone().requires_grad_()
    state = tuple(part.clone().requires_grad_() for part in parts(state))
    out, final = module(x, state if len(state) == 2 else state[0])
    loss = (out * weights[0]).sum() + sum((part * w).sum() for part, w in zip(parts(final), weights[1:], strict=True))
    loss.backward()
    gradients = {"input": x.grad, **{f"state {i}": part.grad for i, part in enumerate(state)}}
    gradients |= {name: p.grad for name, p in module.named_parameters()}
    return out, parts(final), gradients


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_the_reference_equals_torchs_fused_layer_forward_and_backward(cell, num_layers):
    fused, reference = fused_and_reference(cell, num_layers)
    x, state = torch.randn(BATCH, STEPS, INPUT), random_state(cell, num_layers)
    weights = [torch.randn(BATCH, STEPS, HIDDEN), *(torch.randn(num_layers, BATCH, HIDDEN) for _ in parts(state))]
    expected_out, expected_state, expected_gradients = run_with_gradients(fused, x, state, weights)
    out, final, gradients = run_with_gradients(reference, x, state, weights)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(final, expected_state, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert gradients.keys() == expected_gradients.keys()
    assert len(gradients) == 1 + len(parts(state)) + 4 * num_layers  # input, state, four tensors a layer
    for name, gradient in gradients.items():
        assert gradient.abs().sum() > 0, name  # a gradient that never arrived would compare equal to zeros
        torch.testing.assert_close(gradient, expected_gradients[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_the_same_seed_gives_the_reference_torchs_initial_weights(cell):
    torch.manual_seed(7)
    fused = FUSED[cell](INPUT, HIDDEN, num_layers=2, batch_first=True)
    torch.manual_seed(7)
    reference = REFERENCE_MODULES[cell](INPUT, HIDDEN, num_layers=2)
    assert list(reference.state_dict()) == list(fused.state_dict())
    for name, weight in fused.state_dict().items():
        assert torch.equal(reference.state_dict()[name], weight), name
        assert weight.abs().max() <= 1 / HIDDEN**0.5


def test_dropout_acts_between_layers_in_training_only():
    torch.manual_seed(0)
    reference = REFERENCE_MODULES["gru"](INPUT, HIDDEN, num_layers=2, dropout=0.5)
    x = torch.randn(BATCH, STEPS, INPUT)
    evaluated = reference.eval()(x)[0]
    assert torch.equal(evaluated, reference(x)[0])
    assert not torch.allclose(reference.train()(x)[0], evaluated)
    one_layer = REFERENCE_MODULES["gru"](INPUT, HIDDEN, num_layers=1, dropout=0.5)
    assert torch.equal(one_layer.train()(x)[0], one_layer.eval()(x)[0])  # no dropout after the last layer


def test_the_workshops_update_gate_is_one_minus_torchs_z():
    """Γ_u = 1 - z: a GRU whose z is pushed to 1 keeps its state, and to 0 takes the candidate ã^t."""
    torch.manual_seed(0)
    gru = ReferenceGRU(INPUT, HIDDEN)
    x, a = torch.randn(BATCH, INPUT), torch.randn(BATCH, HIDDEN)
    with torch.no_grad():
        z_block = gru.bias_hh_l0[HIDDEN : 2 * HIDDEN]
        z_block.fill_(30.0)  # torch's z = 1: Γ_u = 0, the update gate closed
        torch.testing.assert_close(gru.cell(x, a, 0), a)
        z_block.fill_(-30.0)  # torch's z = 0: Γ_u = 1, the state replaced by the candidate
        (x_r, _, x_c), (a_r, _, a_c) = gru.products(x, a, 0)
        candidate = torch.tanh(x_c + torch.sigmoid(x_r + a_r) * a_c)
        torch.testing.assert_close(gru.cell(x, a, 0), candidate)
        assert not torch.allclose(candidate, a, atol=0.1)  # the two cases tell the mappings apart


def test_torchs_gru_resets_after_the_matrix_product_not_before():
    """The reference computes torch's ã^t; the slides' tanh(W_c [Γ_r * a; x] + b_c) is another function."""
    torch.manual_seed(0)
    fused, reference = fused_and_reference("gru", 1)
    x, a = torch.randn(BATCH, INPUT), torch.randn(1, BATCH, HIDDEN)
    (x_r, x_z, x_c), (a_r, a_z, _) = reference.products(x, a[0], 0)
    gamma_r, gamma_u = torch.sigmoid(x_r + a_r), 1 - torch.sigmoid(x_z + a_z)
    reset_first = nn.functional.linear(
        gamma_r * a[0], reference.weight_hh_l0[2 * HIDDEN :], reference.bias_hh_l0[2 * HIDDEN :]
    )
    slides = gamma_u * torch.tanh(x_c + reset_first) + (1 - gamma_u) * a[0]
    expected = fused(x[:, None], a)[0][:, 0]
    torch.testing.assert_close(reference(x[:, None], a)[0][:, 0], expected)
    assert not torch.allclose(slides, expected, atol=1e-3)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_charrnn_step_equals_one_step_of_the_reference_model(cell, num_layers):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, impl="reference", num_layers=num_layers, hidden_size=9, embedding_dim=5)
    model = CharRNN(11, config).eval()
    assert isinstance(model.rnn, REFERENCE_MODULES[cell])
    tokens = torch.randint(0, 11, (4, 6))
    _, state = model(tokens[:, :3])
    expected, expected_state = model(tokens[:, 3:4], state)
    logits, new_state = model.step(tokens[:, 3], state)
    torch.testing.assert_close(logits, expected[:, 0])
    for ours, theirs in zip(parts(new_state), parts(expected_state), strict=True):
        torch.testing.assert_close(ours, theirs)
    fused = CharRNN(11, replace(config, impl="fused")).eval()
    fused.load_state_dict(model.state_dict())  # one checkpoint layout for both
    torch.testing.assert_close(fused(tokens)[0], model(tokens)[0])


def test_a_reference_model_trains_like_the_fused_one_and_samples(names_file, tmp_path):
    runs = {}
    for impl in ("fused", "reference"):
        run_dir = tmp_path / impl
        budget = ["--set", "train.max_steps=10", "--set", "train.eval_every=5"]
        result = invoke(
            "train", "-c", "tiny", "--data", names_file, "-o", run_dir, "-q", "--set", f"model.impl={impl}", *budget
        )
        assert result.exit_code == 0, result.output
        runs[impl] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    checkpoint = load_checkpoint(tmp_path / "reference" / "best.pt")
    assert checkpoint.config.model.impl == "reference"
    assert isinstance(checkpoint.build_model().rnn, ReferenceGRU)
    # The same seed gives the same initial weights, so the two implementations learn the same numbers.
    for fused, reference in zip(runs["fused"], runs["reference"], strict=True):
        assert reference["train_loss"] == pytest.approx(fused["train_loss"], rel=1e-4)
        assert reference["val_loss"] == pytest.approx(fused["val_loss"], rel=1e-4)
    result = invoke("sample", tmp_path / "reference", "-n", 5, "--seed", 0)
    assert result.exit_code == 0, result.output
    names = result.stdout.splitlines()
    assert len(names) == 5 and all(names)


# A link to a line of code: [text](../dinogen/file.py#L12) or [text](../dinogen/file.py#L12 "what the line holds").
CODE_LINK = re.compile(r"\[(`[^`]+`|[^\]`]+)\]\((\.\./dinogen/[\w/]+\.py)#L(\d+)(?: \"([^\"]+)\")?\)")


def test_every_link_to_a_line_of_code_in_the_docs_points_at_what_it_names():
    """A link's title, or else its text, must be on the line it points at: a line that moves breaks the test."""
    checked = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        links = CODE_LINK.findall(text)
        anywhere = re.findall(r"\(\.\./dinogen/[^)\s]*#L", text)  # every link to a line, in whatever form
        assert len(links) == len(anywhere), f"{page.name}: a link to a line of code not in the checked form"
        for label, target, number, marker in links:
            lines = (page.parent / target).read_text(encoding="utf-8").splitlines()
            assert 1 <= int(number) <= len(lines), f"{page.name}: {target}#L{number} is past the end"
            line = lines[int(number) - 1]
            expected = marker or label.strip("`")
            assert line.strip() and expected in line, f"{page.name}: {target}#L{number} is {line!r}, not {expected!r}"
            checked += 1
    assert checked >= 15  # the workshop page links each of its equations
