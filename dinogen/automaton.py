"""Constraints as one deterministic automaton over the model's tokens, whose dead states mask the next token.

Each constraint is first a small DFA over tokens, a `Factor` of plain lists built on the CPU: the pattern
(`pattern.py`), texts that must appear or end the name and the blocklist (Aho-Corasick, here), the character rules
(`rules.py`). Their product, explored from the state after the prefix, is one DFA; every state from which no
accepting state can be reached is merged into one dead state. On the device it is a few integer tensors, and at
each step a draw masks every token that leads to a state from which no name can be finished within the length range.
"""

import functools
import math
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from dinogen.data import BOUNDARY
from dinogen.errors import OptionError, shorten
from dinogen.limits import MAX_NAME_LENGTH

DEAD = 0  # the state of every name that can no longer meet the constraints
UNREACHABLE = 2 * MAX_NAME_LENGTH + 2  # the distance to acceptance of the dead state: more than any length left


@dataclass
class Factor:
    """One constraint as a DFA over tokens: table[state][token] is the next state, -1 where the constraint breaks.

    The end token's column is never read: a name may end where `accepting` says.
    """

    table: list[list[int]]
    accepting: list[bool]
    start: int = 0


def refuse_states(keywords: str | Sequence[str], limit: int, given: object = None) -> OptionError:
    """The sentence for constraints whose automaton would pass the bound on states; `given`: what they were."""
    keywords = [keywords] if isinstance(keywords, str) else list(keywords)
    slots = ", ".join(f"{{{i}}}" for i in range(len(keywords) - 1)) + " and " * (len(keywords) > 1)
    slots += f"{{{len(keywords) - 1}}}"
    together = " makes" if len(keywords) == 1 else " make"
    rule = f"{together} an automaton of more than {limit:,} states"
    rule += "; simplify it" if len(keywords) == 1 else " together; simplify them"
    if given is None:
        return OptionError(slots + rule, *keywords)
    return OptionError(slots + rule + ", got ", *keywords, detail=shorten(repr(given)))


def substring_factor(words: Sequence[Sequence[Hashable]], symbols: Sequence[Hashable], mode: str, limit: int,
                     keyword: str) -> Factor:  # fmt: skip
    """Aho-Corasick over `words` (sequences of symbols); token t reads `symbols[t]` (several tokens may share one).

    mode "never": reading a word anywhere breaks the constraint (the blocklist); "appears": it holds from the
    moment a word has been read (--contains); "ends": it holds while what was read ends with a word (--ends-with).
    """
    children: list[dict[Hashable, int]] = [{}]
    output = [False]  # node -> whether a word ends here (itself or through its failure links)
    for word in words:
        node = 0
        for symbol in word:
            if symbol not in children[node]:
                if len(children) >= limit:
                    raise refuse_states(keyword, limit, [shorten("".join(map(str, word))) for word in words][:3])
                children[node][symbol] = len(children)
                children.append({})
                output.append(False)
            node = children[node][symbol]
        output[node] = True
    width = len(symbols)
    goto = [[0] * width for _ in children]  # the full transition table, filled breadth first
    fail = [0] * len(children)
    order, queued = deque([0]), {0}
    while order:
        node = order.popleft()
        for token in range(width):
            if token == BOUNDARY:
                continue
            child = children[node].get(symbols[token])
            if child is None:
                goto[node][token] = goto[fail[node]][token] if node else 0
                continue
            goto[node][token] = child
            if child not in queued:  # folded symbols: several tokens lead to one child
                fail[child] = goto[fail[node]][token] if node else 0
                output[child] = output[child] or output[fail[child]]
                queued.add(child)
                order.append(child)
    if mode == "never":
        return Factor([[-1 if output[next_] else next_ for next_ in row] for row in goto], [True] * len(goto))
    if mode == "appears":  # once read, always held
        table = [[node] * width if output[node] else row for node, row in enumerate(goto)]
        return Factor(table, output)
    return Factor(goto, output)


def product(factors: Sequence[Factor], prefix: Sequence[int], width: int, limit: int, keywords: Sequence[str]):
    """(table, accepting) of the product DFA explored from the state after `prefix`; None if the prefix breaks one."""
    start = []
    for factor in factors:
        state = factor.start
        for token in prefix:
            state = factor.table[state][token]
            if state < 0:
                return None
        start.append(state)
    ids = {tuple(start): 0}
    states, table = [tuple(start)], []
    for combined in states:  # `states` grows as new ones are found
        row = [-1] * width
        rows = [factor.table[s] for factor, s in zip(factors, combined, strict=True)]
        for token, following in enumerate(zip(*rows, strict=True)):
            if token == BOUNDARY or min(following) < 0:
                continue
            if following not in ids:
                if len(states) >= limit:
                    raise refuse_states(keywords, limit)
                ids[following] = len(states)
                states.append(following)
            row[token] = ids[following]
        table.append(row)
    accepting = [all(f.accepting[s] for f, s in zip(factors, combined, strict=True)) for combined in states]
    return table, accepting


def distances(table: list[list[int]], accepting: list[bool]) -> list[int | None]:
    """Each state's fewest characters to an accepting state (None: none can be reached), breadth first backwards."""
    before: list[list[int]] = [[] for _ in table]
    for state, row in enumerate(table):
        for token, following in enumerate(row):
            if following >= 0 and token != BOUNDARY:
                before[following].append(state)
    distance: list[int | None] = [0 if ok else None for ok in accepting]
    order = deque(state for state, ok in enumerate(accepting) if ok)
    while order:
        state = order.popleft()
        for earlier in before[state]:
            if distance[earlier] is None:
                distance[earlier] = distance[state] + 1
                order.append(earlier)
    return distance


class Automaton:
    """All the constraints as one DFA on the device, for names of min_length to max_length characters.

    State 0 is the dead state; `start` is the state after the prefix (of `first_length` characters). A token
    is allowed when it leads to a state from which a name can still be finished within the length range: at
    lengths from min_length on, a state within the characters left of acceptance (`distance`); below it, the
    rows of `early`, computed backwards from min_length. The end token is allowed in accepting states only,
    and keeps the state.
    """

    def __init__(self, table, accepting, first_length: int, min_length: int, max_length: int, device):
        distance = distances(table, accepting)
        live = [state for state, steps in enumerate(distance) if steps is not None]
        renamed = {old: new for new, old in enumerate(live, start=1)}
        rows = [[DEAD] * len(table[0])] + [[renamed.get(following, DEAD) for following in table[old]] for old in live]
        for new, old in enumerate(live, start=1):
            rows[new][BOUNDARY] = new if accepting[old] else DEAD
        self.start = renamed.get(0, DEAD)
        self.first_length, self.min_length, self.max_length = first_length, min_length, max_length
        self.transitions = torch.tensor(rows, dtype=torch.long, device=device)  # (S, V)
        self.accepting = torch.tensor([False] + [accepting[old] for old in live], device=device)  # (S,)
        self.distance = torch.tensor([UNREACHABLE] + [distance[old] for old in live], device=device)  # (S,)
        # What taking each token costs: the characters to acceptance after it, plus itself; the end costs none.
        self.cost = (self.distance[self.transitions] + 1).int()  # (S, V)
        self.cost[:, BOUNDARY] = torch.where(self.accepting, 0, UNREACHABLE)
        self.early = self._early_rows()  # (min_length - first_length, S) or None

    @property
    def num_states(self) -> int:
        return self.transitions.shape[0]

    @functools.cached_property
    def finishing(self) -> "Finishing":
        """The masked draw's view of this automaton, built once for all the batches of a call."""
        return Finishing(self)

    def _early_rows(self) -> torch.Tensor | None:
        """Row i: the states from which a name of first_length + i characters can be finished; the end waits."""
        alive = self.distance <= self.max_length - self.min_length  # (S,) at min_length
        rows = []
        for _ in range(self.first_length, self.min_length):
            alive = alive[self.transitions[:, 1:]].any(1)  # some character leads on (the end is masked)
            rows.append(alive)
        return torch.stack(rows[::-1]) if rows else None

    def viable(self, states: torch.Tensor, lengths: int | torch.Tensor) -> torch.Tensor:
        """Whether a name of `lengths` characters in `states` (any shape) can still be finished within the range."""
        if isinstance(lengths, int) and (lengths >= self.min_length or self.early is None):
            return self.distance[states] <= self.max_length - lengths
        if isinstance(lengths, int):
            return self.early[lengths - self.first_length][states]
        late = self.distance[states] <= self.max_length - lengths
        if self.early is None:
            return late
        rows = (lengths - self.first_length).clamp(0, self.early.shape[0] - 1)
        return torch.where(lengths < self.min_length, self.early[rows, states], late)

    def mask(self, logits: torch.Tensor, states: torch.Tensor, lengths: int | torch.Tensor) -> torch.Tensor:
        """`logits` (b, V) with -inf on every token after which names of `lengths` characters in `states` (b,) die."""
        if isinstance(lengths, int) and lengths + 1 >= self.min_length:  # the common case: one lookup
            allowed = self.cost[states] <= self.max_length - lengths  # (b, V)
            if lengths < self.min_length:
                allowed[:, BOUNDARY] = False
        else:
            lengths = torch.as_tensor(lengths, device=logits.device).reshape(-1, 1)  # (b, 1) or (1, 1)
            allowed = self.viable(self.transitions[states], lengths + 1)  # (b, V)
            allowed[:, BOUNDARY] = self.accepting[states] & (lengths[:, 0] >= self.min_length)
        return logits.masked_fill(~allowed, -math.inf)

    def step(self, states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The states (b,) after `tokens` (b,)."""
        return self.transitions[states, tokens]

    def still_possible(self, states: torch.Tensor, ended: torch.Tensor, lengths: int) -> torch.Tensor:
        """After a step: a name that ended is accepted; one going on (now `lengths` long) can still be finished."""
        return torch.where(ended, self.accepting[states], self.viable(states, lengths))


class Finishing:
    """The masked draw's view of an automaton: each state twice, as drawn freely and as being finished.

    A free state allows what `Automaton.mask` allows and the end too: where the name is not yet accepted, the
    model's drawing the end is a wish to end (`wishes`), and the row goes on in the finishing copy of its state
    (state + `size`). A finishing state allows only the tokens that take it one character nearer acceptance (in
    an accepting state, the end). Both copies are one table lookup per step, as the plain mask is. Finishing
    starts at min_length or later, so it never meets the end masked for length; free states below min_length
    are the automaton's own.
    """

    def __init__(self, automaton: Automaton):
        free = automaton.cost.clone()
        free[:, BOUNDARY] = 0  # the end may always be drawn (from min_length on): an end or a wish to end
        nearer = automaton.cost == automaton.distance[:, None]  # (S, V) on a shortest way to acceptance
        self.size, self.max_length = automaton.num_states, automaton.max_length
        self.cost = torch.cat([free, automaton.cost.masked_fill(~nearer, UNREACHABLE)])  # (2S, V)
        self.transitions = torch.cat([automaton.transitions, automaton.transitions + self.size])  # (2S, V)
        self.wishes = torch.cat([~automaton.accepting, torch.zeros_like(automaton.accepting)])  # (2S,)

    def allowed(self, states: torch.Tensor, length: int, min_length: int) -> torch.Tensor:
        """(b, V): the tokens rows in `states` (b,) may draw at `length` characters, from min_length - 1 on."""
        allowed = self.cost[states] <= self.max_length - length
        if length < min_length:
            allowed[:, BOUNDARY] = False
        return allowed
