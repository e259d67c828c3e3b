"""CharRNN: a character-level language model over names; Ensemble: several of them predicting together."""

import math
from dataclasses import replace

import torch
from torch import nn

from dinogen.cells import REFERENCE_MODULES
from dinogen.config import ModelConfig
from dinogen.state import State, join_members, split_members, zero_state

# The recurrent module of each model.impl: torch's fused kernels, or the same equations written out in Python.
_CELLS = {"fused": {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}, "reference": REFERENCE_MODULES}


class CharRNN(nn.Module):
    """Embedding -> stacked RNN/GRU/LSTM (torch's fused kernels, or dinogen.cells) -> linear scores over the vocabulary.

    At each time step t the recurrent layers update a hidden state h_t = f(x_t, h_{t-1}); training
    unrolls them over whole names and backpropagates through time in one call. A model of labelled names
    (`num_labels` > 0) also learns a vector per label, and every call takes each row's label: with
    label_conditioning "input" the label's vector stands beside every character's, x_t = [e(c_t); e(label)];
    with "state" it sets the initial state of every layer, h_0 = tanh(W e(label) + b), and x_t = e(c_t).
    """

    def __init__(self, vocab_size: int, config: ModelConfig, num_labels: int = 0):
        super().__init__()
        config.check_parameters(vocab_size, num_labels)  # before anything is allocated
        self.config, self.num_labels = config, num_labels
        self.by_input = num_labels > 0 and config.label_conditioning == "input"
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        if num_labels:
            self.label_embedding = nn.Embedding(num_labels, config.label_dim)
        if num_labels and not self.by_input:
            self.label_state = nn.Linear(config.label_dim, config.num_layers * config.hidden_size)
        self.rnn = _CELLS[config.impl][config.cell](
            config.embedding_dim + config.label_dim * self.by_input,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # torch applies it between layers only
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Scores for the next character at every position, and the state after the last one; `labels` (B,)."""
        self._check_labels(labels)
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        if self.by_input:
            x = torch.cat([x, self.label_embedding(labels)[:, None].expand(-1, x.shape[1], -1)], dim=-1)  # (B, T, E+D)
        elif self.num_labels and state is None:
            state = self.initial_state(labels, x.dtype)
        out, state = self.rnn(x, state)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        return logits, state

    def initial_state(self, labels: torch.Tensor, dtype: torch.dtype | None = None) -> State:
        """label_conditioning "state": each layer's h_0 = tanh(W e(label) + b), (layers, B, H); an LSTM's c_0 is 0."""
        hidden = torch.tanh(self.label_state(self.label_embedding(labels)))  # (B, layers * H)
        hidden = hidden.view(len(labels), self.config.num_layers, -1).transpose(0, 1).contiguous().to(dtype)
        return (hidden, torch.zeros_like(hidden)) if self.config.cell == "lstm" else hidden

    def _check_labels(self, labels: torch.Tensor | None) -> None:
        if (labels is None) != (self.num_labels == 0):
            raise ValueError("a model of labelled names takes labels (B,), and only such a model takes them")

    def step(
        self, tokens: torch.Tensor, state: State | None = None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """One time step, for generation: scores after `tokens` (B,) (with `labels` (B,)) and the new state.

        The same numbers as `forward(tokens[:, None], state, labels)` in eval mode. For torch's fused layers it
        is written out layer by layer as the cell equations, and a character's first-layer input projection
        W_ih e + b_ih is looked up in a table computed for every character (and the label's share, W_ih e(label),
        in one for every label), so generating costs only the recurrent matrix products; the reference cells run
        their own equations.
        """
        self._check_labels(labels)
        if self.num_labels and not self.by_input and state is None:
            state = self.initial_state(labels, self.head.weight.dtype)
        if self.config.impl == "reference":  # the equations of dinogen.cells, as a learner may have changed them
            x = self.embedding(tokens)  # (B, E)
            if self.by_input:
                x = torch.cat([x, self.label_embedding(labels)], dim=-1)  # (B, E+D)
            out, state = self.rnn(x[:, None], state)  # (B, 1, H)
            return self.head(out[:, 0]), state
        hidden, cell = _split_state(state, self.config, tokens.shape[0], self.head.weight)
        x_gates = self.input_table().index_select(0, tokens)  # (B, G*H)
        if self.by_input:
            x_gates = x_gates + self.label_table().index_select(0, labels)  # (B, G*H)
        new_hidden, new_cell = [], []
        for layer in range(self.config.num_layers):
            if layer > 0:
                weight, bias = getattr(self.rnn, f"weight_ih_l{layer}"), getattr(self.rnn, f"bias_ih_l{layer}")
                x_gates = nn.functional.linear(new_hidden[-1], weight, bias)  # (B, G*H)
            weight, bias = getattr(self.rnn, f"weight_hh_l{layer}"), getattr(self.rnn, f"bias_hh_l{layer}")
            h_gates = nn.functional.linear(hidden[layer], weight, bias)  # (B, G*H)
            if self.config.cell == "lstm":
                h, c = _lstm_cell(x_gates, h_gates, cell[layer])
                new_cell.append(c)
            elif self.config.cell == "gru":
                h = _gru_cell(x_gates, h_gates, hidden[layer])
            else:
                h = torch.tanh(x_gates + h_gates)  # the vanilla RNN: h_t = tanh(W x_t + U h_{t-1} + b)
            new_hidden.append(h)
        logits = self.head(new_hidden[-1])  # (B, V)
        hidden = torch.stack(new_hidden)  # (layers, B, H)
        return logits, (hidden, torch.stack(new_cell)) if self.config.cell == "lstm" else hidden

    def input_table(self) -> torch.Tensor:
        """The first layer's input projection of every character, W_ih e + b_ih: (V, G*H)."""
        weight = self.rnn.weight_ih_l0[:, : self.config.embedding_dim]  # the characters' columns
        return nn.functional.linear(self.embedding.weight, weight, self.rnn.bias_ih_l0)

    def label_table(self) -> torch.Tensor:
        """label_conditioning "input": the label's part of the first layer's input projection, W_ih e(l): (L, G*H)."""
        return nn.functional.linear(self.label_embedding.weight, self.rnn.weight_ih_l0[:, self.config.embedding_dim :])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Ensemble(nn.Module):
    """K CharRNNs of one shape, trained side by side on the same batches, predicting together.

    Each member starts from its own random weights and learns from its own loss, so they make different
    mistakes, and the average of their probabilities beats each of them. In training mode `forward` gives
    every member's scores, (K, B, T, V); in eval mode, and in `step`, the scores of the average: the log
    of the mean of the members' probabilities. A state is the members' states stacked: (K * layers, B, H).
    """

    def __init__(self, vocab_size: int, config: ModelConfig, num_labels: int = 0):
        super().__init__()
        config.check_parameters(vocab_size, num_labels)  # all members together, before anything is allocated
        self.config, self.num_labels = config, num_labels
        member = replace(config, ensemble=1)
        self.members = nn.ModuleList(CharRNN(vocab_size, member, num_labels) for _ in range(config.ensemble))

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        logits, state = self._each(tokens, state, labels, step=False)  # (K, B, T, V)
        return logits if self.training else _average(logits), state

    def step(
        self, tokens: torch.Tensor, state: State | None = None, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        logits, state = self._each(tokens, state, labels, step=True)  # (K, B, V)
        return _average(logits), state

    def _each(self, tokens: torch.Tensor, state: State | None, labels, step: bool) -> tuple[torch.Tensor, State]:
        """Every member's scores, stacked (K, ...), and their new states joined (each has its own label vectors)."""
        parts = split_members(state, len(self.members))
        outputs = [
            (member.step if step else member)(tokens, part, labels)
            for member, part in zip(self.members, parts, strict=True)
        ]
        return torch.stack([logits for logits, _ in outputs]), join_members([part for _, part in outputs])

    num_parameters = CharRNN.num_parameters


def build_model(vocab_size: int, config: ModelConfig, num_labels: int = 0) -> CharRNN | Ensemble:
    """The model `config` describes: a CharRNN, or an Ensemble of `config.ensemble` of them (0 labels: unlabelled)."""
    model = CharRNN if config.ensemble == 1 else Ensemble
    return model(vocab_size, config, num_labels)


def _average(logits: torch.Tensor) -> torch.Tensor:
    """Scores whose softmax is the mean of the members' softmaxes: (K, ..., V) -> (..., V)."""
    return torch.logsumexp(torch.log_softmax(logits.float(), dim=-1), dim=0) - math.log(logits.shape[0])


def _gru_cell(x_gates: torch.Tensor, h_gates: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """GRU: the reset gate r picks what of h feeds the candidate n; the update gate z mixes h and n."""
    size = h.shape[-1]
    r, z = torch.sigmoid(x_gates[:, : 2 * size] + h_gates[:, : 2 * size]).chunk(2, dim=1)
    n = torch.tanh(torch.addcmul(x_gates[:, 2 * size :], r, h_gates[:, 2 * size :]))  # x_n + r * h_n
    return torch.lerp(n, h, z)  # (1 - z) * n + z * h


def _lstm_cell(x_gates: torch.Tensor, h_gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM: input, forget and output gates around a cell state c that carries memory additively."""
    i, f, g, o = (x + h for x, h in zip(x_gates.chunk(4, dim=1), h_gates.chunk(4, dim=1), strict=True))
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _split_state(state: State | None, config: ModelConfig, batch: int, like: torch.Tensor):
    """(hidden, cell) as given, or zeros where generation starts without a state; cell is None but for LSTMs."""
    if state is None:
        state = zero_state(config.num_layers, batch, config.hidden_size, like, pair=config.cell == "lstm")
    return state if isinstance(state, tuple) else (state, None)
