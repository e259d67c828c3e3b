"""CharRNN: a character-level language model over names."""

import torch
from torch import nn

from dinogen.config import ModelConfig

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # (layers, B, H); an LSTM also carries its cell state

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class CharRNN(nn.Module):
    """Embedding -> stacked RNN/GRU/LSTM (torch's fused kernels) -> linear scores over the vocabulary.

    At each time step t the recurrent layers update a hidden state h_t = f(x_t, h_{t-1}); training
    unrolls them over whole names and backpropagates through time in one call.
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        self.rnn = _CELLS[config.cell](
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # torch applies it between layers only
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Scores for the next character at every position, and the state after the last one."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        return logits, state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
