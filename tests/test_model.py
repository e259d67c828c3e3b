import pytest
import torch

from dinogen.config import ModelConfig, parameter_shapes
from dinogen.model import CharRNN, Ensemble, build_model


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_output_and_state_shapes(cell, num_layers):
    config = ModelConfig(cell=cell, num_layers=num_layers, hidden_size=12, embedding_dim=5, dropout=0.2)
    model = CharRNN(20, config)
    logits, state = model(torch.randint(0, 20, (4, 7)))
    assert logits.shape == (4, 7, 20)
    states = state if cell == "lstm" else (state,)
    assert all(part.shape == (num_layers, 4, 12) for part in states)


def test_state_carries_over_steps():
    """Feeding a sequence at once or one step at a time with the carried state gives the same scores."""
    model = CharRNN(10, ModelConfig(cell="lstm", num_layers=2, hidden_size=8, embedding_dim=4)).eval()
    tokens = torch.randint(0, 10, (3, 6))
    whole, _ = model(tokens)
    state, steps = None, []
    for t in range(6):
        logits, state = model(tokens[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole)


def test_parameter_count():
    model = CharRNN(27, ModelConfig(cell="gru", hidden_size=16, embedding_dim=8))
    # embedding + GRU (3 gates: input and hidden weights, two biases) + linear head
    expected = 27 * 8 + 3 * 16 * (8 + 16 + 2) + 16 * 27 + 27
    assert model.num_parameters() == expected


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_step_equals_the_fused_layers(cell, num_layers):
    """The cell equations of `step` give the numbers torch's fused RNN/GRU/LSTM give."""
    torch.manual_seed(0)
    model = CharRNN(11, ModelConfig(cell=cell, num_layers=num_layers, hidden_size=9, embedding_dim=5)).eval()
    tokens = torch.randint(0, 11, (4, 6))
    expected, expected_state = model(tokens)
    logits, state = model(tokens[:, :2])  # a prefix through the fused layers, then steps
    steps = []
    for t in range(2, 6):
        logits, state = model.step(tokens[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), expected[:, 2:])
    for ours, theirs in zip(
        state if cell == "lstm" else (state,), expected_state if cell == "lstm" else (expected_state,), strict=True
    ):
        torch.testing.assert_close(ours, theirs)
    first, _ = model.step(tokens[:, 0])  # no state: starts from zeros, like forward
    torch.testing.assert_close(first, expected[:, 0])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize(("num_layers", "ensemble"), [(1, 1), (3, 1), (2, 3)])
def test_parameter_shapes_match_the_model(cell, num_layers, ensemble):
    config = ModelConfig(cell=cell, embedding_dim=5, hidden_size=7, num_layers=num_layers, ensemble=ensemble)
    model = build_model(11, config)
    assert isinstance(model, Ensemble if ensemble > 1 else CharRNN)
    assert model.num_parameters() == config.num_parameters(11) == ensemble * CharRNN(11, config).num_parameters()
    assert list(parameter_shapes(11, config)) == [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    assert [name for name, _ in parameter_shapes(11, config)] == list(model.state_dict())


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(cell):
    torch.manual_seed(0)
    model = Ensemble(11, ModelConfig(cell=cell, num_layers=2, hidden_size=9, embedding_dim=5, ensemble=3))
    tokens = torch.randint(0, 11, (4, 6))
    members, _ = model(tokens)  # training mode: each member's own scores, for its own loss
    assert members.shape == (3, 4, 6, 11)

    model.eval()
    logits, state = model(tokens)
    expected = torch.stack([member(tokens)[0].softmax(-1) for member in model.members]).mean(0)
    torch.testing.assert_close(logits.softmax(-1), expected)
    assert all(part.shape == (3 * 2, 4, 9) for part in (state if cell == "lstm" else (state,)))

    # Steps carry the members' stacked states and give the same numbers as the whole sequence.
    step_logits, state = model(tokens[:, :2])
    steps = []
    for t in range(2, 6):
        step_logits, state = model.step(tokens[:, t], state)
        steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), logits[:, 2:])
