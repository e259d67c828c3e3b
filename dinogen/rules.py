"""What may come next in a normalised name: the characters a draw or a search never writes at a position."""

import math
import unicodedata

import torch

from dinogen.automaton import Factor
from dinogen.data import BOUNDARY, Vocab, normalize_name

WORD, GAP = 0, 1  # the states of the rules' automaton: after a character; at the start or after a space


class CharacterRules:
    """No space first, after a space or before the end; the end not before min_length.

    Characters that normalisation never leaves in a name (other whitespace, capitals when names are
    lowercased) are never drawn. Without a space in the vocabulary all of this costs one mask at the start.
    """

    def __init__(self, vocab: Vocab, lowercase: bool, device: torch.device):
        is_space = [False] + [char == " " for char in vocab.chars]
        never = [False] + [char != " " and normalize_name(char, lowercase) != char for char in vocab.chars]
        self.space = torch.tensor(is_space, device=device)  # (V,)
        self.never = torch.tensor(never, device=device)  # (V,)
        self.end = torch.arange(len(vocab), device=device) == BOUNDARY  # (V,)
        self.has_space, self.has_never = any(is_space), any(never)
        self.is_space, self.is_never = is_space, never  # (V,) as lists, for the automaton
        # NFC may merge a character with a combining mark after it: only then is a drawn name checked.
        self.may_denormalize = any(unicodedata.combining(char) for char in vocab.chars)

    def mask(self, logits: torch.Tensor, lengths: int | torch.Tensor, last: torch.Tensor, min_length: int):
        """`logits` (b, V) with -inf where a name of `lengths` characters ending in token `last` (b,) cannot go."""
        if isinstance(lengths, int) and lengths >= max(min_length, 1) and not (self.has_space or self.has_never):
            return logits  # the common case: nothing is forbidden
        lengths = torch.as_tensor(lengths, device=logits.device).reshape(-1, 1)  # (b, 1) or (1, 1)
        forbidden = self.never | ((lengths < min_length) & self.end) | ((lengths == 0) & self.space)
        if self.has_space:
            forbidden = forbidden | (self.space[last][:, None] & (self.space | self.end))  # (b, V)
        return logits.masked_fill(forbidden, -math.inf)

    def factor(self) -> Factor | None:
        """The same rules as an automaton for the constraints (None where they forbid nothing): names end in a WORD."""
        if not (self.has_space or self.has_never):
            return None
        table = []
        for state in (WORD, GAP):
            table.append([-1 if never or (space and state == GAP) else GAP if space else WORD
                          for space, never in zip(self.is_space, self.is_never, strict=True)])  # fmt: skip
        return Factor(table, [True, False], start=GAP)
