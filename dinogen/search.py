"""The most likely names: an exact best-first search over the tree of prefixes (with constraints, of those allowed)."""

import heapq
import itertools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from dinogen.controls import Controls
from dinogen.data import BOUNDARY
from dinogen.limits import MAX_SEARCH_PREFIXES
from dinogen.scored import ScoredName
from dinogen.state import State, gather_rows

if TYPE_CHECKING:  # only for type hints: the Generator calls the search
    from dinogen.sample import Generator

MOST_LIKELY_BATCH = 512  # prefixes expanded together


class BestFirst:
    """Exact search for the likeliest names: a priority queue of open prefixes, expanded in batches.

    A node is a prefix the model has read (its state is kept). A queue entry (-log_prob, order, node,
    token) is the node's text followed by `token`; the end token makes it a finished name. Finished
    names leave the queue likeliest first. Entries that cannot beat the n-th likeliest finished name
    already seen are never queued, which keeps the queue small. With constraints, each node also holds its
    state in their automaton, and only the children from which a name can still be finished are queued: the
    tree is cut, never reweighed, so the names are the likeliest of those that meet the constraints.
    """

    def __init__(
        self, generator: "Generator", controls: Controls, rejected: set[str], n: int, label: int | None = None
    ):
        self.generator, self.controls, self.rejected, self.n = generator, controls, rejected, n
        self.label = label  # the label searched for (a model of labelled names), or None
        self.parents: list[int] = []  # node -> parent node (-1: the root, which is the prefix)
        self.tokens: list[int] = []  # node -> its last token
        self.lengths: list[int] = []  # node -> characters, prefix included
        self.automaton_states: list[int] = []  # node -> its state in the constraints' automaton (0 without one)
        self.states: list[tuple[State, int]] = []  # node -> (a batch of states, its row)
        self.queue: list[tuple[float, int, int, int]] = []
        self.order = itertools.count()  # ties go first-come, so the search is deterministic
        self.best_finished: list[float] = []  # min-heap of the n best finished log-probabilities seen
        self.prefix_text = generator.vocab.decode(controls.prefix_ids)
        self.max_prefixes = MAX_SEARCH_PREFIXES  # read no more than these
        self.cut_short = False  # whether the search stopped at max_prefixes before finding n names

    def run(self) -> Iterator[ScoredName]:
        labels = self._labels(1)
        logits, state, prefix_log_prob = self.generator.read_prefix(self.controls, labels)
        if labels is not None:
            prefix_log_prob = float(prefix_log_prob[0])
        root_token = self.controls.prefix_ids[-1] if self.controls.prefix_ids else BOUNDARY
        start = self.controls.automaton.start if self.controls.automaton is not None else 0
        self._add_nodes([-1], [root_token], [len(self.controls.prefix_ids)], [prefix_log_prob], [start], logits, state)
        emitted = 0
        while self.queue:
            while self.queue and self.queue[0][3] == BOUNDARY:  # finished, and nothing open is likelier
                negative, _, node, _ = heapq.heappop(self.queue)
                name = self._text(node)
                scored = self.generator.finished(name, -negative)
                if scored is not None and name not in self.rejected:
                    scored.label = None if self.label is None else self.generator.labels[self.label]
                    yield scored
                    emitted += 1
                    if emitted == self.n:
                        return
            if len(self.parents) >= self.max_prefixes:
                self.cut_short = True  # the model spreads its probability too thinly to search exactly
                return
            self._expand(self._pop_open())

    def _labels(self, rows: int) -> torch.Tensor | None:
        """The searched label for `rows` rows, or None."""
        return None if self.label is None else torch.full((rows,), self.label, device=self.generator.device)

    def _pop_open(self) -> list[tuple[float, int, int, int]]:
        """The likeliest open entries (up to a batch); finished names passed over go back in the queue."""
        taken, finished = [], []
        while self.queue and len(taken) < MOST_LIKELY_BATCH:
            entry = heapq.heappop(self.queue)
            (finished if entry[3] == BOUNDARY else taken).append(entry)
        for entry in finished:
            heapq.heappush(self.queue, entry)
        return taken

    def _expand(self, entries: list[tuple[float, int, int, int]]) -> None:
        """Step the model once for all entries together; each becomes a node."""
        if not entries:
            return
        parents = [node for _, _, node, _ in entries]
        tokens = [token for _, _, _, token in entries]
        state = gather_rows([self.states[node] for node in parents])
        token_tensor = torch.tensor(tokens, device=self.generator.device)
        logits, state = self.generator.model.step(token_tensor, state, self._labels(len(tokens)))
        lengths = [self.lengths[node] + 1 for node in parents]
        automaton_states = [self.automaton_states[node] for node in parents]
        if self.controls.automaton is not None:
            parent_states = torch.tensor(automaton_states, device=self.generator.device)
            automaton_states = self.controls.automaton.step(parent_states, token_tensor).tolist()
        self._add_nodes(parents, tokens, lengths, [-negative for negative, *_ in entries], automaton_states, logits,
                        state)  # fmt: skip

    def _add_nodes(self, parents, tokens, lengths, log_probs, automaton_states, logits, state: State) -> None:
        """Record new nodes and queue their allowed children with their whole log-probability."""
        device = self.generator.device
        first = len(self.parents)
        columns = (self.parents, self.tokens, self.lengths, self.automaton_states)
        for row, node_fields in enumerate(zip(parents, tokens, lengths, automaton_states, strict=True)):
            for column, value in zip(columns, node_fields, strict=True):
                column.append(value)
            self.states.append((state, row))
        allowed = self._allowed(logits, torch.tensor(lengths, device=device), tokens, automaton_states)
        # The model's own probabilities: the masks choose which names exist, they do not reweigh them.
        children = torch.tensor(log_probs, device=device)[:, None] + logits.log_softmax(-1)  # (E, V)
        children = children.masked_fill(allowed == -math.inf, -math.inf)
        threshold = self.best_finished[0] if len(self.best_finished) == self.n else -math.inf
        rows, columns = (children > threshold).nonzero(as_tuple=True)
        for row, column, value in zip(rows.tolist(), columns.tolist(), children[rows, columns].tolist(), strict=True):
            if column == BOUNDARY:
                self._note_finished(value, first + row)
            heapq.heappush(self.queue, (-value, next(self.order), first + row, column))

    def _allowed(self, logits: torch.Tensor, lengths: torch.Tensor, tokens, automaton_states) -> torch.Tensor:
        """`logits` (E, V) with -inf on the children that no name of the length range (and constraints) has."""
        device = self.generator.device
        if self.controls.automaton is not None:  # it holds the character rules and the length range too
            return self.controls.automaton.mask(logits, torch.tensor(automaton_states, device=device), lengths)
        last = torch.tensor(tokens, device=device)
        allowed = self.generator.rules.mask(logits, lengths, last, self.controls.min_length)
        at_max = (lengths >= self.controls.max_length)[:, None]  # names never run past max_length
        return allowed.masked_fill(at_max & (torch.arange(logits.shape[1], device=device) != BOUNDARY), -math.inf)

    def _note_finished(self, log_prob: float, node: int) -> None:
        """Keep the n best finished log-probabilities seen; names the filters reject do not count."""
        if self.rejected and self._text(node) in self.rejected:
            return
        if len(self.best_finished) < self.n:
            heapq.heappush(self.best_finished, log_prob)
        elif log_prob > self.best_finished[0]:
            heapq.heapreplace(self.best_finished, log_prob)

    def _text(self, node: int) -> str:
        """The name a node spells, prefix included."""
        tokens = []
        while self.parents[node] >= 0:
            tokens.append(self.tokens[node])
            node = self.parents[node]
        return self.prefix_text + self.generator.vocab.decode(tokens[::-1])
