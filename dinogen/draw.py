"""Drawing one batch of names character by character, from the state after the prefix.

Two strategies give the same names: a CPU is fastest when finished rows leave the batch (`compact`); a GPU when
shapes stay fixed and finished rows are masked (`fixed`). Each character is drawn at the row's own uniform number.
With constraints, each row also carries its state in their automaton: a masked draw (the default) draws only among
the characters after which the row can still be finished, renormalising the model's distribution over them, and
when the model draws the end before the constraints are met, finishes the name along a shortest way to meet them
(`Draw.masked_choice`); an exact draw (`Controls.exact`) draws from the model's own distribution and drops a row once it
cannot be finished.
"""

import ctypes
import enum
import math
from typing import TYPE_CHECKING

import torch

from dinogen.controls import Controls
from dinogen.data import BOUNDARY, Vocab
from dinogen.scored import ScoredName
from dinogen.state import repeat_rows, select_rows
from dinogen.streams import RowStreams

if TYPE_CHECKING:  # only for type hints: the Generator draws the batches
    from dinogen.sample import Generator

FINISHING_STEPS = 1 << 20  # a finishing character's uniform number is step t + this one's: its own stream


class Rejected(enum.Enum):
    """Why a draw gave no name."""

    TOO_LONG = "ran past max_length (or was not in normal form)"
    UNMET = "could no longer meet the constraints"  # exact draws only: a masked draw always meets them


@torch.inference_mode()
def draw_batch(
    generator: "Generator", keys: torch.Tensor, labels: torch.Tensor | None, controls: Controls
) -> list[ScoredName | Rejected]:
    """The draws of the stream keys `keys` (B, 2), for `labels` (B,) (None: unlabelled): a ScoredName each, or why
    the draw gave no name."""
    size = keys.shape[0]
    if labels is None:
        logits, state, prefix_log_prob = generator.read_prefix(controls)
        logits, state = logits.expand(size, -1), repeat_rows(state, size)
    else:  # the prefix read once for each label of the batch
        distinct, inverse = labels.unique(return_inverse=True)
        logits, state, prefix_log_prob = generator.read_prefix(controls, distinct)
        logits, state, prefix_log_prob = logits[inverse], select_rows(state, inverse), prefix_log_prob[inverse]
    draw = Draw(generator, controls, keys, logits, state, labels)
    tokens, log_probs, ended = draw.fixed() if draw.fixed_shapes else draw.compact()
    totals = (log_probs.sum(1) + prefix_log_prob).tolist()  # (B,) the whole name's log-probability
    prefix_text = generator.vocab.decode(controls.prefix_ids)
    names = [prefix_text + name for name in generator.decoder(tokens)]
    if generator.rules.may_denormalize:  # rare: only vocabularies with combining marks
        ended &= torch.tensor([generator.normalize(name) == name for name in names], device=ended.device)
    return [
        ScoredName.of(name, total) if kept else Rejected.UNMET if unmet else Rejected.TOO_LONG
        for name, total, kept, unmet in zip(names, totals, ended.tolist(), draw.unmet.tolist(), strict=True)
    ]


class Draw:
    """One batch of names drawn character by character from the state after the prefix."""

    def __init__(self, generator: "Generator", controls: Controls, keys: torch.Tensor, logits, state, labels=None):
        self.model, self.rules, self.controls = generator.model, generator.rules, controls
        self.fixed_shapes = generator.fixed_shapes
        self.keys, self.logits, self.state = keys, logits, state  # (B, 2), (B, V), (layers, B, H)
        self.labels = labels  # (B,) each row's label, or None
        size, device = keys.shape[0], keys.device
        self.prefix_length = len(controls.prefix_ids)
        self.steps = controls.max_length - self.prefix_length + 1  # characters still allowed, plus the end
        self.tokens = torch.full((size, self.steps), BOUNDARY, device=device)  # (B, S)
        self.log_probs = torch.zeros(size, self.steps, device=device)  # (B, S) the model's log-prob of each choice
        self.ended = torch.zeros(size, dtype=torch.bool, device=device)  # (B,) rows that chose the end
        self.unmet = torch.zeros(size, dtype=torch.bool, device=device)  # (B,) exact draws that cannot be finished
        self.last = torch.full((size,), controls.prefix_ids[-1] if controls.prefix_ids else BOUNDARY, device=device)
        self.automaton = controls.automaton
        self.steered = self.automaton is not None and not controls.exact  # the automaton masks the draw
        self.finishing = self.automaton.finishing if self.steered else None
        # (B,) each row's state in the automaton (in a masked draw, in `finishing`); without constraints, none.
        self.states = None if self.automaton is None else torch.full((size,), self.automaton.start, device=device)

    def choose(self, t: int, keys: torch.Tensor, states) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Step t's token of each row (b,), the model's (untempered, unmasked) log-probability of it, and the
        rows' states as drawing it left them (a masked draw's rows may start finishing)."""
        if self.steered:
            token, states = self.masked_choice(t, keys, states)
        else:
            allowed = self.rules.mask(self.logits, self.prefix_length + t, self.last, self.controls.min_length)
            token = pick(allowed, self.controls, RowStreams.uniform(keys, t))  # (b,)
        return token, self.logits.log_softmax(-1).gather(1, token[:, None]).squeeze(1), states

    def masked_choice(self, t: int, keys: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A masked draw's tokens (b,): the model's, among the characters after which the name can still be finished
        (the automaton holds the character rules and the length range too), until it draws the end too soon.

        From then on the name is finished along a shortest way to meet the constraints: each character is drawn, in
        the model's proportions, among those one step nearer, and the name ends once they are met. So a name the
        model would end as `tarimgia` becomes `tarimgiaraptor`, not a long run that reaches `raptor` by chance.
        """
        length, min_length = self.prefix_length + t, self.controls.min_length
        finishing = self.finishing
        if length + 1 < min_length:  # nobody finishes yet: the automaton's own rows for short names
            allowed = self.automaton.mask(self.logits, states, length)
        else:
            allowed = self.logits.masked_fill(~finishing.allowed(states, length, min_length), -math.inf)
        token = pick(allowed, self.controls, RowStreams.uniform(keys, t))
        wished = (token == BOUNDARY) & finishing.wishes[states]  # (b,) rows that start finishing here
        if self.fixed_shapes:  # every row draws a finishing character too: no wait for the device
            states = torch.where(wished, states + finishing.size, states)
            nearer = self.logits.masked_fill(~finishing.allowed(states, length, min_length), -math.inf)
            finish = pick(nearer, self.controls, RowStreams.uniform(keys, t + FINISHING_STEPS))
            return torch.where(wished, finish, token), states
        rows = wished.nonzero().squeeze(1)  # on a CPU only the few rows that start finishing here draw again
        if len(rows):
            states[rows] += finishing.size
            nearer = self.logits[rows].masked_fill(~finishing.allowed(states[rows], length, min_length), -math.inf)
            token[rows] = pick(nearer, self.controls, RowStreams.uniform(keys[rows], t + FINISHING_STEPS))
        return token, states

    def follow(self, t: int, states, token: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The rows' states after step t's tokens, and for exact draws which rows can no longer be finished."""
        if self.automaton is None:
            return None, None
        if self.steered:
            return self.finishing.transitions[states, token], None
        states = self.automaton.step(states, token)
        return states, ~self.automaton.still_possible(states, token == BOUNDARY, self.prefix_length + t + 1)

    def compact(self):
        """Rows that end leave the batch, so the remaining steps cost only what is still being written."""
        alive = torch.arange(self.keys.shape[0], device=self.keys.device)  # rows still writing
        keys, states, labels = self.keys, self.states, self.labels
        for t in range(self.steps):
            token, log_prob, states = self.choose(t, keys, states)
            self.tokens[alive, t], self.log_probs[alive, t] = token, log_prob
            done = stopping = token == BOUNDARY
            states, failed = self.follow(t, states, token)
            if failed is not None:  # an exact draw: rows that can no longer be finished stop here too
                self.unmet[alive[failed]] = True
                done, stopping = done & ~failed, done | failed
            self.ended[alive[done]] = True
            going = (~stopping).nonzero().squeeze(1)  # positions of the rows that go on
            if not len(going) or t == self.steps - 1:
                break  # rows still going at the last step ran past max_length
            alive, keys, self.last = alive[going], keys[going], token[going]
            states = None if states is None else states[going]
            labels = None if labels is None else labels[going]
            self.logits, self.state = self.model.step(self.last, select_rows(self.state, going), labels)
        return self.tokens, self.log_probs, self.ended

    def fixed(self, check_every: int = 8):
        """All rows step together with fixed shapes; the host asks whether any row is going every few steps."""
        going = torch.ones_like(self.ended)
        states = self.states
        for t in range(self.steps):
            token, log_prob, states = self.choose(t, self.keys, states)
            token = token.where(going, BOUNDARY)  # a finished row keeps writing the boundary
            self.tokens[:, t], self.log_probs[:, t] = token, log_prob.where(going, 0.0)
            states, failed = self.follow(t, states, token)  # a finished row keeps its state
            if failed is not None:
                self.unmet |= going & failed
                going &= ~failed
            self.ended |= going & (token == BOUNDARY)
            going &= token != BOUNDARY
            if t == self.steps - 1 or (t % check_every == check_every - 1 and not bool(going.any())):
                break
            self.last = token
            self.logits, self.state = self.model.step(token, self.state, self.labels)
        return self.tokens, self.log_probs, self.ended


def utf32_text(code_points: torch.Tensor) -> str:
    """Decode a contiguous CPU int32 tensor of code points in one call (no NumPy needed to reach its bytes)."""
    return ctypes.string_at(code_points.data_ptr(), code_points.numel() * 4).decode("utf-32-le")


def pick(logits: torch.Tensor, controls: Controls, uniform: torch.Tensor) -> torch.Tensor:
    """Next token per row: argmax at temperature 0, else a draw from the (top-k/top-p) tempered distribution.

    The draw inverts the cumulative distribution at the row's own uniform number `uniform` (b,), so a
    row's choice depends on its random stream alone, not on the other rows of the batch.
    """
    if controls.temperature == 0:
        return logits.argmax(-1)
    scaled = logits - logits.max(-1, keepdim=True).values  # the likeliest at 0: no overflow at tiny temperatures
    if controls.temperature != 1:
        scaled = scaled / controls.temperature
    if controls.top_k is not None and controls.top_k < scaled.size(-1):
        kth = scaled.topk(controls.top_k, dim=-1).values[:, -1:]  # (b, 1)
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    if controls.top_p is not None and controls.top_p < 1:
        ordered, order = scaled.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        outside = probs.cumsum(-1) - probs > controls.top_p  # the smallest set reaching top_p is kept
        scaled = scaled.scatter(-1, order, ordered.masked_fill(outside, -math.inf))
    cumulative = scaled.exp().double().cumsum(-1)  # (b, V) unnormalised; float64 keeps it exact enough
    target = uniform * cumulative[:, -1]  # (b,) strictly below the total, as uniform < 1
    return (cumulative <= target[:, None]).sum(-1)  # the first token whose cumulative weight passes the target


class RowDecoder:
    """Turns a batch of token rows into text all at once, not character by character.

    Each token becomes a Unicode code point and the end a newline; the rows' code points, cut after their
    end, are joined into one UTF-32 buffer that is decoded and split once.
    """

    def __init__(self, vocab: Vocab, device: torch.device):
        self.code_points = torch.tensor([ord("\n"), *map(ord, vocab.chars)], dtype=torch.int32, device=device)

    def __call__(self, tokens: torch.Tensor) -> list[str]:
        """The text of each row of `tokens` (B, S) up to its first end (its first boundary token)."""
        codes = self.code_points[tokens]  # (B, S) int32
        codes = torch.cat([codes, torch.full_like(codes[:, :1], ord("\n"))], dim=1)  # rows that never ended end here
        boundary = tokens == BOUNDARY  # (B, S)
        first_end = torch.where(boundary.any(1), boundary.int().argmax(1), tokens.shape[1])  # (B,)
        keep = torch.arange(codes.shape[1], device=codes.device) <= first_end[:, None]
        flat = codes[keep].cpu().contiguous()
        return utf32_text(flat).split("\n")[:-1]
