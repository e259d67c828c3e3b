"""The workshop's recurrent cells written gate by gate: reference versions of torch's nn.RNN, nn.GRU and nn.LSTM.

torch runs its recurrent layers as fused kernels, fast and out of sight. The modules here compute the same
numbers in plain Python, one equation a line, in the workshop's notation: x^t the input at step t, a^t the
hidden state, Γ the gates, ã^t and c̃^t the candidates, c^t the LSTM's cell state. They hold exactly torch's
parameters (names, shapes, gate blocks in torch's order, the same initial values for the same seed), so a
state_dict moves between a fused and a reference module unchanged. Change an equation here and train it
with `dinogen train --set model.impl=reference`; docs/how-it-works.md walks through them.

Where the workshop writes one matrix over the stacked vector, W_a [a^{t-1}; x^t] + b_a, torch keeps the two
halves apart: weight_ih (W_ax, applied to x^t) and weight_hh (W_aa, applied to a^{t-1}), each with its own
bias. So W_a [a^{t-1}; x^t] + b_a is W_ax x^t + b_ax + W_aa a^{t-1} + b_aa below: only the sum of the two
biases matters, torch keeps both to match cuDNN.
"""

import math

import torch
from torch import nn

from dinogen.config import GATES
from dinogen.state import State, layers_of, stack_layers, zero_state


class ReferenceRecurrent(nn.Module):
    """Stacked layers of one cell, unrolled over time in a Python loop; subclasses write the cell's equations."""

    cell_type = ""  # "rnn", "gru" or "lstm": how many gate blocks each weight matrix stacks (config.GATES)
    has_cell_state = False  # the LSTM's state is a pair (a, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, batch_first=True):
        super().__init__()
        if not batch_first:
            raise ValueError("the reference cells take batches first: (B, T, E)")
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.gates = GATES[self.cell_type]
        for layer in range(num_layers):  # torch's names and order, so that state_dicts are interchangeable
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(self.gates * hidden_size, width)))
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.empty(self.gates * hidden_size, hidden_size))
            )
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(self.gates * hidden_size)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(self.gates * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ±1/sqrt(hidden_size), drawn in torch's order: the same seed gives torch's initial weights."""
        bound = 1 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The last layer's a^t at every step, and every layer's state after the last step, as torch returns them."""
        if state is None:
            state = zero_state(self.num_layers, x.shape[0], self.hidden_size, x, pair=self.has_cell_state)
        states = layers_of(state)  # one per layer: a^0 (B, H), or (a^0, c^0) for the LSTM
        for layer in range(self.num_layers):
            outputs = []
            # Backpropagation through time is nothing more than autograd going back through this loop:
            # every step's a^t is kept for the backward pass, which runs the steps in reverse.
            for t in range(x.shape[1]):
                states[layer] = self.cell(x[:, t], states[layer], layer)
                outputs.append(self.output(states[layer]))  # a^t (B, H)
            x = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            if layer < self.num_layers - 1:  # as torch: dropout between layers, not after the last
                x = nn.functional.dropout(x, self.dropout, self.training)
        return x, stack_layers(states)

    def cell(self, x: torch.Tensor, state, layer: int):
        """One step of one layer: x^t (B, E) and the layer's state at t-1 in, its state at t out."""
        raise NotImplementedError

    def output(self, state) -> torch.Tensor:
        """a^t, what a layer passes on, from its state."""
        return state

    def products(self, x: torch.Tensor, a: torch.Tensor, layer: int) -> tuple[tuple[torch.Tensor, ...], ...]:
        """W_ax x^t + b_ax and W_aa a^{t-1} + b_aa of `layer`, each cut into its gates' blocks: (B, H) each."""
        from_x = nn.functional.linear(x, getattr(self, f"weight_ih_l{layer}"), getattr(self, f"bias_ih_l{layer}"))
        from_a = nn.functional.linear(a, getattr(self, f"weight_hh_l{layer}"), getattr(self, f"bias_hh_l{layer}"))
        return from_x.chunk(self.gates, dim=1), from_a.chunk(self.gates, dim=1)


class ReferenceRNN(ReferenceRecurrent):
    """torch's nn.RNN (tanh): the vanilla RNN, a^t = tanh(W_a [a^{t-1}; x^t] + b_a)."""

    cell_type = "rnn"

    def cell(self, x, a, layer):
        (x_a,), (a_a,) = self.products(x, a, layer)
        return torch.tanh(x_a + a_a)  # a^t = tanh(W_ax x^t + W_aa a^{t-1} + b_a)


class ReferenceGRU(ReferenceRecurrent):
    """torch's nn.GRU in the workshop's form: a^t = Γ_u * ã^t + (1 - Γ_u) * a^{t-1}.

    torch writes the last step h' = (1 - z) * n + z * h: its update gate z is the share of the old state
    kept, the workshop's Γ_u the share of the candidate taken, so Γ_u = 1 - z (torch's r is Γ_r and its n
    is ã^t). As 1 - σ(s) = σ(-s), the weights in torch's z block are the workshop's W_u negated.

    Where the reset gate acts differs too. Cho et al.'s GRU, and most slides, reset the state before the
    matrix product: ã^t = tanh(W_c [Γ_r * a^{t-1}; x^t] + b_c). torch (and cuDNN) reset after it:
    ã^t = tanh(W_cx x^t + b_cx + Γ_r * (W_ca a^{t-1} + b_ca)), which ONNX calls linear_before_reset=1, so
    that one matrix product of a^{t-1} serves all three gates. This module computes torch's form, so it
    equals the fused layer; the two forms are different functions, and weights do not carry between them.
    """

    cell_type = "gru"

    def cell(self, x, a, layer):
        (x_r, x_z, x_c), (a_r, a_z, a_c) = self.products(x, a, layer)  # torch's blocks: r, z, n
        gamma_r = torch.sigmoid(x_r + a_r)  # Γ_r, the reset gate: torch's r
        gamma_u = 1 - torch.sigmoid(x_z + a_z)  # Γ_u, the update gate: torch's z is 1 - Γ_u
        a_tilde = torch.tanh(x_c + gamma_r * a_c)  # ã^t, the candidate (torch's n): reset after the product
        return gamma_u * a_tilde + (1 - gamma_u) * a  # a^t: Γ_u of the candidate, the rest of a^{t-1}


class ReferenceLSTM(ReferenceRecurrent):
    """torch's nn.LSTM: a cell state c^t, changed only by gated addition, carries memory; a^t = Γ_o * tanh(c^t)."""

    cell_type = "lstm"
    has_cell_state = True

    def cell(self, x, state, layer):
        a, c = state
        (x_i, x_f, x_c, x_o), (a_i, a_f, a_c, a_o) = self.products(x, a, layer)  # torch's blocks: i, f, g, o
        gamma_i = torch.sigmoid(x_i + a_i)  # Γ_i, the input gate (the workshop's Γ_u): torch's i
        gamma_f = torch.sigmoid(x_f + a_f)  # Γ_f, the forget gate: torch's f
        c_tilde = torch.tanh(x_c + a_c)  # c̃^t, the candidate: torch's g
        gamma_o = torch.sigmoid(x_o + a_o)  # Γ_o, the output gate: torch's o
        c = gamma_f * c + gamma_i * c_tilde  # c^t: keep Γ_f of the old memory, add Γ_i of the new
        a = gamma_o * torch.tanh(c)  # a^t
        return a, c

    def output(self, state):
        """a^t: the LSTM passes on its hidden state and keeps c^t to itself."""
        return state[0]


REFERENCE_MODULES = {"rnn": ReferenceRNN, "gru": ReferenceGRU, "lstm": ReferenceLSTM}
